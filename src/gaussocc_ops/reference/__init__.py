"""Pure-PyTorch oracles of every kernel (plus a NumPy ray caster, raycast_dda): short, obviously
correct, slow. Autograd gives their gradients; tests hold the compiled kernels to them."""
