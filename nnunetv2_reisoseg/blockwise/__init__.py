"""The blockwise engine every pass over a volume larger than memory runs on (predict-volume's blocks, its pyramids
and instances, evaluate's blockwise pass), in daisy's parts: ``roi`` (boxes, and blocks with the box they write and
the box they read with its halo), ``tasks`` (a ``BlockTask`` run by a ``TaskRunner``, here or on dask workers that
receive only coordinates), ``state`` (the one resume scheme: whole files, then a done marker per block) and
``components`` (objects across blocks: connected components with ids that hold across blocks)."""
