"""One module per attribute dialect; :mod:`semconv.registry` decides their order."""
