"""Data shared by paradigms and models, so that neither imports the other: scikit-learn's
bundled digit images and their seeded split (:mod:`switchbench.data.digits`), and the named
neurogym task sets with their seeded trial maker and on-disk trial pools
(:mod:`switchbench.data.tasksets`). Nothing here is downloaded."""
