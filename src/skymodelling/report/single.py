def plot_spectrum(*a, **k): raise NotImplementedError
