"""Data: torchvision sets and generated stand-ins (:mod:`.sets`), the user's own files
(:mod:`.user`), image tensors and class-balanced draws (:mod:`.images`), label noise (:mod:`.noise`)."""
