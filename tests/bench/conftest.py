from tests.onnx_models import tiny_onnx, tiny_onnx_dynamic, tiny_onnx_raw, tiny_torch_model  # noqa: F401
