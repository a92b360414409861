"""The core tasks: what ``memo-zoo run`` does with a recipe (smoke, preprocess, train, generate,
experiment), one readable module each, registered in the ``task`` slot by ``memo_zoo.tasks.plugin``
like any third-party task."""
