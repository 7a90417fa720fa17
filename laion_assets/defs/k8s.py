"""Where each step runs on Kubernetes: CPU steps on CPU nodes, the CLIP step on a GPU node.

With `LAION_ASSETS_EXECUTOR=k8s` (set in the deployment, see infra/helm/values.yaml),
`executor_from_environment()` is dagster-k8s's `k8s_job_executor`: the run pod only
orchestrates, and every step of a run is its own Kubernetes Job, so one shard's steps land on
different nodes. Unset (local runs, tests, `make demo`): None, Dagster's default executor.

- every step (`step_k8s_config`): CPU and memory requests, and the node selector
  `LAION_ASSETS_K8S_CPU_NODE_SELECTOR` if set (none by default: taint the GPU nodes and CPU
  steps stay off them);
- the steps in `GPU_STEPS` (`per_step_k8s_config`, by op name): the node selector
  `LAION_ASSETS_K8S_GPU_NODE_SELECTOR` (default `nvidia.com/gpu.present=true`, the label of
  NVIDIA's GPU feature discovery), a toleration for the `nvidia.com/gpu` taint, one
  `nvidia.com/gpu` in the limits, and the image `LAION_ASSETS_K8S_GPU_IMAGE` if set (the
  Dockerfile's `cuda` target; the other steps keep the run's image, the `cpu` target).

Both are merged SHALLOW: a key they set (node_selector, tolerations, affinity, resources)
replaces what the run launcher or the code location set, instead of being deep-merged with it,
so the GPU step never carries a CPU node selector or CPU-sized limits. Everything else
(env, secrets, service account, volumes) is kept. Node selectors are `key=value,key=value`.
"""

import os
from collections.abc import Mapping
from typing import Any

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

EXECUTOR_ENV = "LAION_ASSETS_EXECUTOR"
CPU_NODE_SELECTOR_ENV = "LAION_ASSETS_K8S_CPU_NODE_SELECTOR"
GPU_NODE_SELECTOR_ENV = "LAION_ASSETS_K8S_GPU_NODE_SELECTOR"
GPU_IMAGE_ENV = "LAION_ASSETS_K8S_GPU_IMAGE"

GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]

# Op names placed on GPU nodes (asset name = op name): the assets in the `gpu` pool.
GPU_STEPS = ("clip_scored_pairs",)

# Extraction and fetching of one shard (~64 WARC files): a few cores, a few GiB. No CPU limit
# (throttling only slows the step); a memory limit so a runaway step is killed, not the node.
CPU_STEP_RESOURCES = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
# CLIP scoring: one GPU, cores for JPEG decoding and the data loader, room for the model.
GPU_STEP_RESOURCES = {
    "requests": {"cpu": "4", "memory": "16Gi"},
    "limits": {"memory": "32Gi", GPU_RESOURCE: "1"},
}


def cpu_step_k8s_config(node_selector: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`dagster-k8s/config` for CPU steps (the executor's `step_k8s_config`)."""
    pod_spec = {"node_selector": dict(node_selector)} if node_selector else {}
    return {
        "container_config": {"resources": CPU_STEP_RESOURCES},
        "pod_spec_config": pod_spec,
        "merge_behavior": "SHALLOW",
    }


def gpu_step_k8s_config(
    node_selector: Mapping[str, str] = DEFAULT_GPU_NODE_SELECTOR, image: str | None = None
) -> dict[str, Any]:
    """`dagster-k8s/config` for the CLIP step: GPU node, GPU taint tolerated, one GPU."""
    container = {"resources": GPU_STEP_RESOURCES}
    if image:
        container["image"] = image
    return {
        "container_config": container,
        "pod_spec_config": {
            "node_selector": dict(node_selector),
            "tolerations": GPU_TOLERATIONS,
            "affinity": {},  # drop a CPU-pool affinity the run pod may carry
        },
        "merge_behavior": "SHALLOW",
    }


def parse_node_selector(value: str) -> dict[str, str]:
    """`key=value,key=value` -> dict; empty -> {}."""
    selector = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"node selector {value!r}: expected key=value[,key=value]")
        selector[key.strip()] = val.strip()
    return selector


def executor_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Config of `k8s_job_executor` for this deployment (validated in the tests)."""
    gpu_selector = environ.get(GPU_NODE_SELECTOR_ENV)
    return {
        "step_k8s_config": cpu_step_k8s_config(
            parse_node_selector(environ.get(CPU_NODE_SELECTOR_ENV, ""))),
        "per_step_k8s_config": {
            op: gpu_step_k8s_config(
                parse_node_selector(gpu_selector) if gpu_selector else DEFAULT_GPU_NODE_SELECTOR,
                environ.get(GPU_IMAGE_ENV) or None)
            for op in GPU_STEPS
        },
    }


def executor_from_environment(
    environ: Mapping[str, str] = os.environ,
) -> ExecutorDefinition:
    """`k8s_job_executor` configured for this deployment if LAION_ASSETS_EXECUTOR=k8s;
    `multiprocess` for Dagster's multiprocess executor; unset: the in-process executor (a
    shard's stages are a chain, so one process per run loads torch once instead of once per
    step)."""
    kind = environ.get(EXECUTOR_ENV, "").strip().lower()
    if kind in ("", "in_process"):
        return in_process_executor
    if kind == "multiprocess":
        return multiprocess_executor
    if kind != "k8s":
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected k8s, multiprocess, in_process or "
                         "unset")
    from dagster_k8s import k8s_job_executor  # imports the kubernetes client: only when used

    return k8s_job_executor.configured(executor_config(environ), name="k8s")
