"""cspine's Python side: the model contract, the preprocessing spec (mirrored by the C++ engine), the two
networks, training on Kaggle-layout folders and TorchScript export.

Runs on Debian's python3-torch 1.13 and python3-torchvision (no downloads); the same code on CPU and CUDA.
"""

CONTRACT_VERSION = 2
