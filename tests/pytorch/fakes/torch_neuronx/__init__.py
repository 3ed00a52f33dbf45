"""Stand-in for torch_neuronx: eikit only needs it imported before torch.jit.load."""

__version__ = "0.0+fake"
