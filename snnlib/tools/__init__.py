"""Tooling around the library: atomic writes, repository paths, strict YAML, the lab,
the README's badges and the glibc allocator settings. Nothing here is the method."""
