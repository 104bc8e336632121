"""The source image's ICC profile, EXIF and XMP: read on encode, stored in .clc v2 sections, restored on decode.

Kept by default (as avifenc does): a wide-gamut photo must not silently lose its colour profile. `--strip`
(`strip=True`) drops all three. Pure Pillow, no torch.

* ICC: kept only when its colour space matches what the codec decodes to (an RGB profile for colour, a GRAY
  profile for grayscale sources): a CMYK or Lab profile would mislabel the RGB pixels the codec stores, so it
  is dropped with a note.
* EXIF: taken after EXIF orientation was applied to the pixels (ImageOps.exif_transpose removes the tag), so a
  viewer does not rotate the decoded image twice. Stored with the "Exif\\0\\0" prefix JPEG's APP1 uses.
* XMP: the packet as found (JPEG APP1, WebP XMP chunk, PNG iTXt "XML:com.adobe.xmp").

Restored into PNG, JPEG, WebP, AVIF and TIFF outputs (PPM and BMP cannot hold them).
"""

from __future__ import annotations

from PIL import Image, PngImagePlugin

EXIF_PREFIX = b"Exif\x00\x00"
PNG_XMP_KEY = "XML:com.adobe.xmp"
KINDS = ("icc", "exif", "xmp")
ICC_SPACES = {"RGB": b"RGB ", "L": b"GRAY"}  # the ICC header's data colour space (bytes 16..19)


def icc_colour_space(icc: bytes) -> bytes | None:
    return icc[16:20] if len(icc) >= 128 else None


def read_metadata(im: Image.Image, grayscale: bool, notes: list[str] | None = None) -> dict[str, bytes]:
    """ICC / EXIF / XMP of a loaded (already orientation-corrected) Pillow image, as raw bytes."""
    meta: dict[str, bytes] = {}
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and icc:
        if icc_colour_space(icc) == ICC_SPACES["L" if grayscale else "RGB"]:
            meta["icc"] = icc
        elif notes is not None:
            space = (icc_colour_space(icc) or b"?").decode("latin-1").strip()
            notes.append(f"ICC profile dropped (its colour space {space or '?'} is not the decoded image's)")
    exif = im.info.get("exif")
    if isinstance(exif, bytes) and exif:
        meta["exif"] = exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif
    xmp = im.info.get("xmp", im.info.get(PNG_XMP_KEY))
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes) and xmp:
        meta["xmp"] = xmp
    return meta


def save_options(fmt: str, metadata: dict[str, bytes] | None) -> dict:
    """Keyword arguments for Image.save that write `metadata` into a `fmt` file (none where it cannot)."""
    if not metadata:
        return {}
    kw: dict = {}
    if fmt in ("PNG", "JPEG", "WEBP", "TIFF", "AVIF") and metadata.get("icc"):
        kw["icc_profile"] = metadata["icc"]
    if fmt in ("PNG", "JPEG", "WEBP", "TIFF", "AVIF") and metadata.get("exif"):
        kw["exif"] = metadata["exif"]
    if metadata.get("xmp"):
        if fmt in ("JPEG", "WEBP", "AVIF"):
            kw["xmp"] = metadata["xmp"]
        elif fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt(PNG_XMP_KEY, metadata["xmp"].decode("utf-8", "replace"))
            kw["pnginfo"] = info
    return kw
