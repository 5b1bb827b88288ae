from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as handle:
    long_description = handle.read()

setup(
    name="openmm-timewarp",
    version="0.1.0",
    description="Timewarp: learned, time-coarsened Metropolis-Hastings moves for OpenMM",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["openmm_timewarp", "openmm_timewarp.*"]),
    package_data={"openmm_timewarp": ["models/*.pt", "models/*.md", "models/*.json", "lab/structures/*.pdb",
                                      "lab/analysis/*.json", "lab/datasets/*.json"]},
    install_requires=[
        "torch>=2.1",
        "openmm>=8.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "tqdm>=4.60",
        "PeptideBuilder>=1.1",
        "networkx>=3.0",
        "mdtraj>=1.9.9",
        "matplotlib>=3.7",
        "openmmtools>=0.23",
    ],
    extras_require={
        "torchforce": ["openmmtorch>=1.4"],
        "test": ["pytest>=7", "openmmtorch>=1.4", "zuko>=1.0"],
    },
    entry_points={"console_scripts": ["openmm-timewarp=openmm_timewarp.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Chemistry",
    ],
)
