"""m-133 for Triton's Python backend: a softmax regression over 8x8 digit images whose
weights sit beside this file (weights.npz, written by training/train_m133.py). Input
pixels FP32 [batch, 64] (counts 0..16); outputs label INT64 [batch] and probabilities
FP32 [batch, 10]. Triton checks the tensors' names, types and shapes against
config.pbtxt before execute sees them."""
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        with np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.npz")) as w:
            self.weights = w["weights"]
            self.bias = w["bias"]

    def execute(self, requests):
        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "pixels").as_numpy()
            logits = (pixels / np.float32(16)) @ self.weights + self.bias
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
            label = logits.argmax(axis=1).astype(np.int64)
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("label", label), pb_utils.Tensor("probabilities", probabilities)]
                )
            )
        return responses
