from tests.onnx_models import sample_video, tiny_onnx, tiny_onnx_dynamic, tiny_onnx_raw  # noqa: F401
