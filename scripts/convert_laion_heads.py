"""Convert LAION's scoring heads once into the package's head files (safetensors + layer list).

Two steps, each in the environment that can read its inputs:

    /tmp/tfenv/bin/python scripts/convert_laion_heads.py keras   # TensorFlow + safetensors
    .venv/bin/python scripts/convert_laion_heads.py torch        # torch + safetensors

`keras` reads each autokeras NSFW detector's layers from its own `keras_metadata.pb`, its
weights from the SavedModel's checkpoint, writes the head file, and checks it against
TensorFlow's output on seeded random unit embeddings (stored as the test's reference).
`torch` converts the aesthetic heads (torch state dicts) and clip-retrieval's violence
prompt embeddings. TensorFlow is never needed at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "models" / "laion"
WEIGHTS = ROOT / "laion_assets" / "pipeline" / "scoring" / "heads" / "weights"
REFERENCE = ROOT / "laion_assets_tests" / "data" / "laion_heads"
NSFW_REPO = "LAION-AI/CLIP-based-NSFW-Detector@d6bb8fe31fd4"
AESTHETIC_REPO = "LAION-AI/aesthetic-predictor@6d122adad522"
IMPROVED_REPO = "christophschuhmann/improved-aesthetic-predictor@6934dd81792f"
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor on the std deviation
TOLERANCE = 1e-5

sys.path.insert(0, str(ROOT))
from laion_assets_tests.pipeline.scoring.reference_inputs import (  # noqa: E402
    decode_keys,
    reference_embeddings,
)

# (head file, source file, kind, CLIP models it was trained on, repository)
KERAS_HEADS = (
    ("nsfw_vit_b_32", "nsfw-detector/clip_autokeras_nsfw_b32.zip", "ViT-B-32"),
    ("nsfw_vit_l_14", "nsfw-detector/clip_autokeras_binary_nsfw.zip", "ViT-L-14"),
)
LINEAR_HEADS = (
    ("aesthetic_v1_vit_b_32", "aesthetic-predictor/sa_0_4_vit_b_32_linear.pth", "ViT-B-32"),
    ("aesthetic_v1_vit_b_16", "aesthetic-predictor/sa_0_4_vit_b_16_linear.pth", "ViT-B-16"),
    ("aesthetic_v1_vit_l_14", "aesthetic-predictor/sa_0_4_vit_l_14_linear.pth", "ViT-L-14"),
)
IMPROVED_HEAD = ("aesthetic_v2_vit_l_14",
                 "improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth", "ViT-L-14")
# improved-aesthetic-predictor's MLP: nn.Sequential indices of its Linear layers and dropouts
IMPROVED_LAYOUT = ((0, 1024), ("dropout", 0.2), (2, 128), ("dropout", 0.2), (4, 64),
                   ("dropout", 0.1), (6, 16), (7, 1))
VIOLENCE_HEADS = (
    ("violence_vit_b_32", "nsfw-detector/violence_detection_vit_b_32.npy", "ViT-B-32"),
    ("violence_vit_l_14", "nsfw-detector/violence_detection_vit_l_14.npy", "ViT-L-14"),
)
CLIP_LOGIT_SCALE = 100.0  # CLIP's trained logit scale: softmax over the two prompts


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_head(name: str, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """One head file: float32 tensors named `<layer index>.<param>`, the layers as metadata."""
    from safetensors.numpy import save_file

    path = WEIGHTS / f"{name}.safetensors"
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path),
              metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes, sha256 {sha256(path)}")
    return path


# -- keras (autokeras NSFW detectors) ----------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _proto_fields(data: bytes):
    """(field number, value) of a protobuf message, wire types 0, 1, 2 and 5."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):
            step = 8 if wire == 1 else 4
            value, i = data[i:i + step], i + step
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def keras_layers(metadata_pb: Path) -> list[dict]:
    """The model's layer configs from `keras_metadata.pb` (SavedMetadata: nodes = field 1;
    SavedObject: node_path = 3, metadata JSON = 5)."""
    for number, node in _proto_fields(metadata_pb.read_bytes()):
        fields = dict(_proto_fields(node)) if number == 1 else {}
        if fields.get(3) == b"root":
            return json.loads(fields[5])["config"]["layers"]
    raise ValueError(f"{metadata_pb}: no root model in the Keras metadata")


def encode_keys(strings: list[bytes], where: str) -> np.ndarray:
    """TensorFlow's `AsString` of float32 values ("%f": 6 decimals) as integers:
    2 * round(|v| * 1e6) + sign bit, the key the torch head computes from the number."""
    keys = []
    for raw in strings:
        text = raw.decode()
        if not re.fullmatch(r"-?\d+\.\d{6}", text):
            raise ValueError(f"{where}: vocabulary entry {text!r} is not a %f-formatted number")
        keys.append(2 * int(text.lstrip("-").replace(".", "")) + text.startswith("-"))
    return np.asarray(keys, np.int64)


def keras_spec(layers: list[dict], variables: dict[str, np.ndarray],
               tables: dict[int, tuple[np.ndarray, np.ndarray]],
               where: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The torch layer list and tensors for a sequential autokeras model.

    Keras numbers the layers that hold variables (`layer_with_weights-k`) in model order;
    `tables` are the vocabularies of the categorical input columns (column -> keys, index)."""
    spec, tensors, weighted = [], {}, 0
    for layer in layers:
        kind, config = layer["class_name"], layer["config"]
        inbound = layer.get("inbound_nodes") or []
        if len(inbound) > 1 or (inbound and len(inbound[0]) > 1):
            raise ValueError(f"{where}: layer {config['name']} is not sequential")
        prefix = f"layer_with_weights-{weighted}/"
        var = {k[len(prefix):].split("/")[0]: v for k, v in variables.items()
               if k.startswith(prefix)}
        index = str(len(spec))
        if kind == "InputLayer":
            dim = config["batch_input_shape"]["items"][-1]
            continue
        if kind == "Custom>MultiCategoryEncoding":
            columns = [i for i, e in enumerate(config["encoding"]) if e != "none"]
            if {config["encoding"][i] for i in columns} - {"int"} or set(columns) != set(tables):
                raise ValueError(f"{where}: encodings {set(config['encoding'])} of columns "
                                 f"{columns} do not match the lookup tables {sorted(tables)}")
            spec.append({"op": "categorical", "dim": dim, "columns": columns, "oov_index": 0})
            for column in columns:
                keys, values = tables[column]
                order = np.argsort(keys)
                tensors[f"{index}.keys_{column}"] = keys[order]
                tensors[f"{index}.index_{column}"] = values[order].astype(np.float32)
            weighted += 1
        elif kind == "Normalization":
            spec.append({"op": "normalize", "dim": dim, "epsilon": KERAS_EPSILON})
            tensors[f"{index}.mean"], tensors[f"{index}.variance"] = var["mean"], var["variance"]
            weighted += 1
        elif kind == "Dense":
            kernel = var["kernel"]
            spec.append({"op": "linear", "in": int(kernel.shape[0]), "out": int(kernel.shape[1])})
            tensors[f"{index}.weight"], tensors[f"{index}.bias"] = kernel.T, var["bias"]
            weighted += 1
            if config["activation"] != "linear":
                spec.append({"op": config["activation"]})
        elif kind == "ReLU":
            if config.get("max_value") or config.get("negative_slope") or config.get("threshold"):
                raise ValueError(f"{where}: ReLU {config['name']} is not a plain ReLU")
            spec.append({"op": "relu"})
        elif kind == "Dropout":
            spec.append({"op": "dropout", "rate": config["rate"]})
        elif kind == "Activation":
            spec.append({"op": config["activation"]})
        else:
            raise ValueError(f"{where}: layer {kind} has no torch port here")
    return spec, tensors


def lookup_tables(model, where: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each categorical column's vocabulary, exported from the loaded SavedModel."""
    import tensorflow as tf

    tables = {}
    encoding = getattr(model, "layer_with_weights-0")
    for column, layer in enumerate(encoding.encoding_layers):
        if layer is not None:
            keys, values = tf.raw_ops.LookupTableExportV2(
                table_handle=layer.lookup_table.resource_handle, Tkeys=tf.string,
                Tvalues=tf.int64)
            tables[column] = (encode_keys(list(keys.numpy()), where), values.numpy())
    return tables


def convert_keras() -> None:
    import tensorflow as tf

    REFERENCE.mkdir(parents=True, exist_ok=True)
    for name, source, clip_model in KERAS_HEADS:
        zipped = SOURCE / source
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(zipped) as archive:
                archive.extractall(tmp)
            model_dir = next(Path(tmp).glob("*/saved_model.pb")).parent
            reader = tf.train.load_checkpoint(str(model_dir / "variables" / "variables"))
            variables = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                         if k.startswith("layer_with_weights-")}
            model = tf.saved_model.load(str(model_dir))
            tables = lookup_tables(model, source)
            spec, tensors = keras_spec(keras_layers(model_dir / "keras_metadata.pb"), variables,
                                       tables, source)
            dim = spec[0]["dim"]
            x = reference_embeddings(dim, {c: decode_keys(k) for c, (k, _) in tables.items()})
            serve = model.signatures["serving_default"]
            (expected,) = serve(input_1=tf.constant(x.astype(np.float64))).values()
            expected = expected.numpy().reshape(-1).astype(np.float32)
        path = write_head(name, tensors, {
            "kind": "nsfw", "output": "punsafe", "layers": spec, "clip_models": [clip_model],
            "dim": str(dim), "source": f"{NSFW_REPO}:{source.split('/')[-1]}",
            "source_sha256": sha256(zipped), "licence": "MIT"})
        got = _run_numpy(spec, tensors, x)
        diff = float(np.abs(got - expected).max())
        print(f"  {name}: {' -> '.join(_describe(op) for op in spec)}; "
              f"max |numpy port - TensorFlow| over {len(x)} embeddings = {diff:.3g}")
        if diff > TOLERANCE:
            sys.exit(f"{name}: the converted head differs from TensorFlow by {diff}")
        np.save(REFERENCE / f"{name}_tensorflow.npy", expected)
        print(f"  reference outputs: {path.name} -> {REFERENCE / f'{name}_tensorflow.npy'}")


def _describe(op: dict) -> str:
    return f"{op['op']} {op['in']}x{op['out']}" if op["op"] == "linear" else op["op"]


def _run_numpy(spec: list[dict], tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The head in plain numpy (float32), to check the conversion before torch sees it."""
    for i, op in enumerate(spec):
        if op["op"] == "categorical":
            x = np.where(np.isnan(x), np.float32(0), x)
            for column in op["columns"]:
                keys, index = tensors[f"{i}.keys_{column}"], tensors[f"{i}.index_{column}"]
                v = x[:, column]
                micro = np.rint(np.abs(v.astype(np.float64)) * 1e6).astype(np.int64)
                key = 2 * micro + np.signbit(v)
                at = np.clip(np.searchsorted(keys, key), 0, len(keys) - 1)
                x[:, column] = np.where(keys[at] == key, index[at], np.float32(op["oov_index"]))
        elif op["op"] == "normalize":
            x = (x - tensors[f"{i}.mean"]) / np.maximum(np.sqrt(tensors[f"{i}.variance"]),
                                                         np.float32(op["epsilon"]))
        elif op["op"] == "linear":
            x = x @ tensors[f"{i}.weight"].T + tensors[f"{i}.bias"]
        elif op["op"] == "relu":
            x = np.maximum(x, 0)
        elif op["op"] == "sigmoid":
            x = 1 / (1 + np.exp(-x))
    return x.reshape(-1).astype(np.float32)


# -- torch (aesthetic heads) and numpy (violence prompts) ------------------------------------


def convert_torch() -> None:
    import torch

    def load(source: str) -> dict[str, np.ndarray]:
        state = torch.load(SOURCE / source, map_location="cpu", weights_only=True)
        return {k: v.numpy() for k, v in state.items()}

    for name, source, clip_model in LINEAR_HEADS:
        state = load(source)
        dim = int(state["weight"].shape[1])
        write_head(name, {"0.weight": state["weight"], "0.bias": state["bias"]}, {
            "kind": "aesthetic", "output": "aesthetic", "version": "LAION-Aesthetics v1",
            "layers": [{"op": "linear", "in": dim, "out": 1}], "clip_models": [clip_model],
            "dim": str(dim), "source": f"{AESTHETIC_REPO}:{source.split('/')[-1]}",
            "source_sha256": sha256(SOURCE / source), "licence": "MIT"})
    name, source, clip_model = IMPROVED_HEAD
    state, spec, tensors, width = load(source), [], {}, 768
    for layer, value in IMPROVED_LAYOUT:
        if layer == "dropout":
            spec.append({"op": "dropout", "rate": value})
            continue
        weight = state[f"layers.{layer}.weight"]
        if weight.shape != (value, width):
            raise ValueError(f"{source}: layers.{layer} is {weight.shape}, not {(value, width)}")
        tensors[f"{len(spec)}.weight"] = weight
        tensors[f"{len(spec)}.bias"] = state[f"layers.{layer}.bias"]
        spec.append({"op": "linear", "in": width, "out": value})
        width = value
    write_head(name, tensors, {
        "kind": "aesthetic", "output": "aesthetic", "version": "LAION-Aesthetics v2",
        "layers": spec, "clip_models": [clip_model], "dim": "768",
        "source": f"{IMPROVED_REPO}:{source.split('/')[-1]}",
        "source_sha256": sha256(SOURCE / source), "licence": "Apache-2.0"})
    for name, source, clip_model in VIOLENCE_HEADS:
        prompts = np.load(SOURCE / source)
        write_head(name, {"0.prompts": prompts}, {
            "kind": "violence", "output": "pviolence",
            "layers": [{"op": "two_prompts", "dim": int(prompts.shape[1]),
                        "logit_scale": CLIP_LOGIT_SCALE, "positive": 1}],
            "clip_models": [clip_model], "dim": str(prompts.shape[1]),
            "source": f"{NSFW_REPO}:{source.split('/')[-1]}",
            "source_sha256": sha256(SOURCE / source), "licence": "MIT"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("keras", "torch"))
    step = parser.parse_args().step
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    convert_keras() if step == "keras" else convert_torch()


if __name__ == "__main__":
    main()
