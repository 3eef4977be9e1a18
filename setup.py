"""Build hook for the optional C extensions; all metadata is in pyproject.toml.

Four small optional C extensions, each beside the Python it speeds up:
``aiowriter._writing._accel`` (``write_data``'s accepting fast path and the drain's record
framing), ``aiowriter._encoding._accel`` (sample lists of doubles), ``aiowriter._kafka._crc``
(record batch CRCs with the CPU's crc32 instruction) and ``aiowriter._kafka._zstd_thread``
(zstd in a native thread; it loads the system's libzstd at run time, so nothing more is
needed to build it). ``optional=True``: where they cannot be compiled (no C compiler), the
install still succeeds and their Python twins run, or batches are compressed on the event
loop (``aiowriter._writing.accel.ACCELERATED`` says which; see ``aiowriter/_native.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aiowriter._writing._accel",
            sources=["aiowriter/_writing/_accel.c", "aiowriter/_writing/_write_call.c"],
            depends=["aiowriter/_slots.h", "aiowriter/_writing/_write_call.h"],
            optional=True,
        ),
        Extension(
            "aiowriter._encoding._accel",
            sources=["aiowriter/_encoding/_accel.c"],
            depends=["aiowriter/_slots.h"],
            optional=True,
        ),
        Extension(
            "aiowriter._kafka._crc",
            sources=["aiowriter/_kafka/_crc.c"],
            optional=True,
        ),
        Extension(
            "aiowriter._kafka._zstd_thread",
            sources=["aiowriter/_kafka/_zstd_thread.c"],
            optional=True,
        ),
    ]
)
