"""Shared package of the fine-tuning toolkit: arguments, data, prompts, encoding, models, training."""

import logging


class _KernelsNotice(logging.Filter):
    """Drops bitsandbytes' import-time notice that the optional `kernels` hub package is absent (CPU 4-bit works
    without it); every other record of that logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


# Here, in the package's first lines: every entry point imports `common` before anything imports bitsandbytes.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_KernelsNotice())
