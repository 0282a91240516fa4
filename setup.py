from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="dbayes",
    version="0.1.0",
    description="Deep Bayes (generative) vs discriminative classifiers under adversarial attack",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["dbayes_tf", "dbayes_tf.*"]) + ["dbayes_cli"],
    package_dir={"dbayes_cli": "cli"},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10",
        "tensorflow-probability>=0.25,<0.26",
        "tf-keras>=2.21,<2.22",  # TFP imports it at start-up, even with Keras 3 in use
        "cleverhans==4.0.0",
        "numpy",
        "click>=8.1",
        "pandas",
        "tabulate",  # pandas' DataFrame.to_markdown needs it
        "matplotlib",
        "pyyaml",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest>=8", "scikit-learn"],  # sklearn: an independent ROC AUC to check ours
        "bench": ["adversarial-robustness-toolbox", "foolbox"],
    },
    entry_points={"console_scripts": ["dbayes=dbayes_cli.main:main"]},
)
