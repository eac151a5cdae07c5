"""Pure-PyTorch oracles of every kernel: short, obviously correct, slow. Autograd gives their
gradients; tests hold the compiled kernels to them."""
