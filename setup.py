"""Build and install lowprec. The C core in csrc/ is compiled here through cffi (API mode); nothing
is compiled at import time. The checkout keeps the design card's layout; package_dir maps it into
the installed package: formats/ -> lowprec.format_data (the TOML definitions), sims/ -> lowprec.sims."""

from setuptools import setup

setup(
    name="lowprec",
    version="0.1.0",
    description="Bit-exact low-precision arithmetic and MAC-unit simulator for deep learning",
    python_requires=">=3.11",
    packages=["lowprec", "lowprec.formats", "lowprec.kernels", "lowprec.array", "lowprec.mac", "lowprec.nn", "lowprec.testing",
              "lowprec.cost", "lowprec.format_data", "lowprec.sims"],
    package_dir={"lowprec": "lowprec", "lowprec.formats": "lowprec/formats", "lowprec.kernels": "lowprec/kernels",
                 "lowprec.array": "lowprec/array", "lowprec.mac": "lowprec/mac", "lowprec.nn": "lowprec/nn",
                 "lowprec.testing": "lowprec/testing",
                 "lowprec.cost": "lowprec/cost", "lowprec.format_data": "formats", "lowprec.sims": "sims"},
    package_data={"lowprec.format_data": ["*.toml", "mac_units/*.toml"], "lowprec.cost": ["*.csv"]},
    setup_requires=["cffi>=1.15"],
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    install_requires=["numpy>=2.0", "cffi>=1.15", "tqdm", "numba>=0.60"],
    extras_require={
        "torch": ["torch>=2.2"],
        "plot": ["matplotlib"],
        "studies": ["torch", "matplotlib", "scikit-learn", "dask[distributed]"],
        "gpu": ["triton>=3.2; platform_system == 'Linux'"],
        "test": ["pytest", "pytest-xdist", "hypothesis", "ml_dtypes>=0.5", "gfloat>=0.5", "gmpy2>=2.1", "matplotlib", "scikit-learn",
                 "dask[distributed]", "triton>=3.2; platform_system == 'Linux'", "transformers"],
    },
    entry_points={"console_scripts": ["lowprec=lowprec.cli:main"]},
    zip_safe=False,
)
