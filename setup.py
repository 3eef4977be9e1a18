"""Build hook for the one optional C extension; all metadata is in pyproject.toml.

``aiowriter._writing._accel`` is ``write_data``'s accepting fast path in C. ``optional=True``:
where it cannot be compiled (no C compiler), the install still succeeds and the same steps
run in Python (``aiowriter/_writing/accel.py`` says which one is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aiowriter._writing._accel",
            sources=["aiowriter/_writing/_accel.c"],
            optional=True,
        )
    ]
)
