"""A dictionary's pictures (`clc build-dict --pictures`), for block copy: PNG bytes (exact pixels on any
machine), decoded on first use and kept, with their detail (format/copysection.detail). Both decoder backends
paste from them (format/copysection.py); the encoder searches them (encoding/blockcopy.py)."""

from __future__ import annotations

import numpy as np

from ..format.copysection import check_indices, detail, paste, unpack
from ..errors import DictionaryError


def decode_picture(png: bytes) -> np.ndarray:
    """A dictionary picture's pixels, uint8 (h, w, 3) (PNG: the same pixels on every machine)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.format != "PNG":
                raise DictionaryError("corrupt .clcdict: a picture is not a PNG file")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError):
        raise DictionaryError("corrupt .clcdict: a picture does not decode") from None


def encode_picture(pixels: np.ndarray) -> bytes:
    """uint8 (h, w, 3) -> the PNG bytes a dictionary stores."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(buf, "PNG", compress_level=9)
    return buf.getvalue()


class Pictures:
    """A dictionary's pictures as both decoders use them: PNG bytes, decoded on first use and kept."""

    def __init__(self, pngs: list[bytes]) -> None:
        self.pngs = pngs
        self._pixels: dict[int, np.ndarray] = {}
        self._details: dict[int, np.ndarray] = {}
        self._thumbnails: list | None = None

    def __len__(self) -> int:
        return len(self.pngs)

    def pixels(self, index: int, keep: bool = True) -> np.ndarray:
        """Picture `index`, decoded once and kept (`keep=False`: not kept, e.g. to look at every picture)."""
        if index in self._pixels:
            return self._pixels[index]
        px = decode_picture(self.pngs[index])
        if keep:
            self._pixels[index] = px
        return px

    def detail(self, index: int) -> np.ndarray:
        """copysection.detail of picture `index`, computed once and kept (with its pixels)."""
        if index not in self._details:
            self._details[index] = detail(self.pixels(index))
        return self._details[index]

    def thumbnails(self) -> list:
        """Every picture as rank_pictures looks at it (thumbnail()), computed once: an encoder of many files
        decodes the pictures for ranking only once (the encoder's only use; imports torch)."""
        if self._thumbnails is None:
            from ..encoding.blockcopy import thumbnail, to_unit

            self._thumbnails = [thumbnail(to_unit(self.pixels(i, keep=False))) for i in range(len(self))]
        return self._thumbnails

    def apply(self, pixels: np.ndarray, section: bytes, width: int, height: int) -> np.ndarray:
        """The decoded pixels (uint8 (H, W, 3)) with a file's copy section applied."""
        bc = unpack(section, width, height)
        check_indices(bc, len(self))
        return paste(pixels, bc, [self.pixels(p) for p in bc.pictures],
                     [self.detail(p) for p in bc.pictures] if bc.detailed else None)
