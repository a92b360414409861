"""memo-zoo-causal-conv: a depthwise causal temporal convolution for memo-zoo's temporal slot."""
