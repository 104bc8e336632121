"""Evaluation: RD benchmark on real files (runner), metrics, BD-rate, anchor curves, classical codecs, plots.

    from clccodec.evaluation import bd_rate
    bd_rate(vtm_bpp, vtm_psnr, my_bpp, my_psnr, max_rate=1.0)   # percent, negative = fewer bits
"""

from clccodec.evaluation.bd import BDRateError, bd_psnr, bd_rate
from clccodec.evaluation.metrics import ms_ssim, psnr

__all__ = ["BDRateError", "bd_psnr", "bd_rate", "ms_ssim", "psnr"]
