"""Reference model assemblies, synthetic scenes and demo entry points."""
