"""DreamBooth data: the dataset (:mod:`.dreambooth`), robust image loading (:mod:`.images`) and
aspect-ratio buckets (:mod:`.buckets`)."""
