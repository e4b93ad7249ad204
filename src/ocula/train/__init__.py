"""The training job (``ocula.train.job.train``, public as ``ocula.train``) and ``Run``, what it returns.

The modules load torch and timm; nothing is imported here, so ``import ocula`` stays light.
"""
