"""Script bundles: archives of a script and its files, checked before they are kept and
again each time one is unpacked into a run's working folder (``archive``)."""
