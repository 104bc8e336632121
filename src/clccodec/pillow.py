"""A Pillow plugin for .clc files: importing this module registers it, as pillow-heif and pillow-avif-plugin do.

    import clccodec.pillow                      # or clccodec.pillow.register_clc_opener()
    from PIL import Image
    im = Image.open("photo.clc")                # size and mode from the header; pixels on first use
    im.save("copy.clc", quality=4, effort=2)    # any Pillow image; keywords: those of clccodec.encode
    Image.open("photo.png").save("photo.clc")   # alpha, ICC profile, EXIF and XMP kept

Opening parses the file and checks its checksums (no model, no torch); the pixels are decoded on load() with the
shared decoder of clccodec.decode (the numpy backend on a CPU; torch for near-lossless files, which decode with the
exact synthesis). `im.info` carries the file's ICC profile, EXIF and XMP as Pillow's
own plugins name them, and the .clc fields "clc_quality", "clc_model_release" and "clc_references". A truncated
file decodes from its complete slices when `ImageFile.LOAD_TRUNCATED_IMAGES` is set, as Pillow's decoders do;
Pillow's own decompression-bomb check applies at open. There is no `draft()`: decoding at a reduced size would cost
as much as a full decode (the synthesis is one network), so `thumbnail()` decodes, then resizes. Saving takes the keywords of `clccodec.encode` (quality
0..8, effort, refs, target_bpp, target_size, target_psnr, slices, strip, alpha, near_lossless, model, dictionary,
device);
`icc_profile=`, `exif=` and `xmp=` replace the image's own, as for Pillow's AVIF and WebP plugins.
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from .errors import ClcError
from .format import container

FORMAT = "CLC"
EXTENSION = ".clc"
MIME = "image/x-clc"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC and prefix[3:4] in [bytes([v]) for v in container.VERSIONS]


class ClcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "Conditional Latent Coding (clccodec)"

    def _open(self) -> None:
        from .model.releases import describe

        assert self.fp is not None
        data = self.fp.read()
        try:
            f = container.unpack(data, partial=True)  # (load() refuses a truncated file unless asked for it)
        except ClcError as e:
            raise SyntaxError(f"not a valid .clc file: {e}") from None
        self._clc_data: bytes | None = data
        self._size = (f.width, f.height)
        self._mode = f.mode
        names = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp"}
        self.info.update({names[k]: v for k, v in f.metadata.items()})
        self.info.update({"clc_quality": f.quality, "clc_model_release": describe(f.model_id),
                          "clc_references": f.num_refs})
        self.tile = []

    def load(self):
        if self._clc_data is not None:
            from .decoding.decoder import decode

            data, self._clc_data = self._clc_data, None
            try:
                decoded = decode(data, partial=bool(ImageFile.LOAD_TRUNCATED_IMAGES),
                                 max_pixels=self.size[0] * self.size[1])  # (Pillow's bomb check ran at open)
            except ClcError as e:
                raise OSError(f"cannot decode .clc file: {e}") from e
            self.im = decoded.im
        return super().load()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    import inspect

    from .encoding.backends import encode

    keywords = set(inspect.signature(encode).parameters) - {"image"}  # every keyword of clccodec.encode
    options = {k: v for k, v in im.encoderinfo.items() if k in keywords}
    source = im
    overrides = {k: im.encoderinfo[k] for k in ("icc_profile", "exif", "xmp") if k in im.encoderinfo}
    if overrides:
        source = im.copy()
        source.info.update(overrides)
    fp.write(encode(source, **options))


def register_clc_opener() -> None:
    """Register .clc with Pillow (open, save, the extension and MIME type); done on import, harmless twice."""
    Image.register_open(FORMAT, ClcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register_clc_opener()
