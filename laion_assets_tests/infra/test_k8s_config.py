"""infra/helm/values.yaml and laion_assets/defs/k8s.py against dagster-k8s's own schemas, and
where each step's pod lands, rendered by dagster-k8s's own code (no cluster needed).

The chart turns `runLauncher.config.k8sRunLauncher` (camelCase) into the instance's
`run_launcher.config` (snake_case) with `templates/helpers/instance/_run-launcher.tpl`;
`render_run_launcher` below does the same for the keys used here, so the result can be
checked against `K8sRunLauncher.config_type()`.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dagster import in_process_executor, multiprocess_executor
from dagster._config import process_config, validate_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.config import dagster_instance_config
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    USER_DEFINED_K8S_JOB_CONFIG_SCHEMA,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_postgres import PostgresRunStorage

from laion_assets.defs import k8s

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "infra" / "helm" / "values.yaml"
RELEASE, NAMESPACE = "laion", "laion"
FULLNAME = f"{RELEASE}-dagster"  # the chart's dagster.fullname for release "laion"
SETTINGS_CONFIGMAP, AWS_SECRET = "laion-assets-settings", "laion-assets-aws"
GPU_LABEL = "nvidia.com/gpu.present"

# Keys the chart's K8sRunLauncher template reads (values.schema.json forbids others).
CHART_K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "resources",
    "failPodOnRunFailure", "schedulerName", "securityContext", "runK8sConfig",
}
RUN_K8S_CONFIG_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                       "podTemplateSpecMetadata": "pod_template_spec_metadata",
                       "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def deployment(values) -> dict:
    (only,) = values["dagster-user-deployments"]["deployments"]
    return only


def _names(refs) -> list[str]:
    return [r["name"] for r in refs or [] if "name" in r]


def render_run_launcher(values: dict) -> dict:
    """`run_launcher.config` as the chart writes it into the instance's dagster.yaml."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    unknown = set(launcher) - CHART_K8S_RUN_LAUNCHER_KEYS
    if unknown:
        raise ValueError(f"runLauncher.config.k8sRunLauncher: keys the chart rejects: {unknown}")
    config = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": FULLNAME,
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if launcher.get("kubeconfigFile"):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    if "image" in launcher:
        config["job_image"] = f"{launcher['image']['repository']}:{launcher['image']['tag']}"
    if _names(launcher.get("envConfigMaps")):
        config["env_config_maps"] = _names(launcher["envConfigMaps"])
    if _names(launcher.get("envSecrets")):
        config["env_secrets"] = _names(launcher["envSecrets"])
    for key, name in [("envVars", "env_vars"), ("volumeMounts", "volume_mounts"),
                      ("volumes", "volumes"), ("labels", "labels"), ("resources", "resources"),
                      ("schedulerName", "scheduler_name"),
                      ("securityContext", "security_context")]:
        if launcher.get(key):
            config[name] = launcher[key]
    if launcher.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {RUN_K8S_CONFIG_KEYS[k]: v
                                    for k, v in launcher["runK8sConfig"].items() if v}
    return config


def render_instance(values: dict) -> dict:
    """The chart's instance dagster.yaml (storage, run launcher, coordinator, concurrency)."""
    pg = values["postgresql"]
    storage = {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"], "params": pg["postgresqlParams"],
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    instance = {
        f"{kind}_storage": {"module": module, "class": cls, "config": storage}
        for kind, module, cls in [
            ("run", "dagster_postgres.run_storage", "PostgresRunStorage"),
            ("event_log", "dagster_postgres.event_log", "PostgresEventLogStorage"),
            ("schedule", "dagster_postgres.schedule_storage", "PostgresScheduleStorage")]
    }
    instance["run_launcher"] = {"module": "dagster_k8s", "class": "K8sRunLauncher",
                                "config": render_run_launcher(values)}
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    instance["run_coordinator"] = {
        "module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
        "config": {_snake(k): v for k, v in queued.items() if v is not None}}
    instance["concurrency"] = render_concurrency(values["concurrency"])
    instance["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    return instance


def render_concurrency(concurrency: dict) -> dict:
    assert concurrency["enabled"]
    pools = {_snake(k): v for k, v in concurrency.get("pools", {}).items() if v is not None}
    runs = concurrency.get("runs", {})
    rendered_runs = {}
    if runs.get("maxConcurrentRuns") is not None:
        rendered_runs["max_concurrent_runs"] = runs["maxConcurrentRuns"]
    if runs.get("tagConcurrencyLimits"):
        rendered_runs["tag_concurrency_limits"] = runs["tagConcurrencyLimits"]
    return {**({"pools": pools} if pools else {}), **({"runs": rendered_runs} if runs else {})}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _errors(result) -> str:
    return "; ".join(e.message for e in result.errors or [])


# -- the values file and the run launcher ---------------------------------------------------


def test_values_parse_and_name_the_image_and_code_location(values, deployment):
    assert values["dagster-user-deployments"]["enabled"] is True
    assert deployment["codeServerArgs"] == ["-m", "laion_assets.definitions"]
    assert deployment["image"]["repository"] and deployment["image"]["tag"]
    assert deployment["env"]["LAION_ASSETS_EXECUTOR"] == "k8s"
    assert {SETTINGS_CONFIGMAP} <= set(_names(deployment["envConfigMaps"]))
    assert {AWS_SECRET} <= set(_names(deployment["envSecrets"]))
    assert values["postgresql"]["enabled"] is False  # an external server
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_run_launcher_config_is_valid_for_k8s_run_launcher(values):
    config = render_run_launcher(values)
    result = validate_config(K8sRunLauncher.config_type(), config)
    assert result.success, _errors(result)
    assert config["env_config_maps"] == [SETTINGS_CONFIGMAP]
    assert config["env_secrets"] == [AWS_SECRET]
    assert process_config(K8sRunLauncher.config_type(), config).success


@pytest.mark.parametrize("broken", [
    {"env_secrets": AWS_SECRET},               # a list of names, not a name
    {"env_var": ["LAION_ASSETS_STORE=x"]},      # no such field
    {"load_incluster_config": "yes"},          # a bool
])
def test_broken_run_launcher_config_is_rejected(values, broken):
    result = validate_config(K8sRunLauncher.config_type(), {**render_run_launcher(values),
                                                            **broken})
    assert not result.success


def test_values_key_the_chart_does_not_know_is_rejected(values):
    broken = json.loads(json.dumps(values))
    broken["runLauncher"]["config"]["k8sRunLauncher"]["nodeSelector"] = {GPU_LABEL: "true"}
    with pytest.raises(ValueError, match="nodeSelector"):
        render_run_launcher(broken)


def test_rendered_instance_config_is_valid(values, tmp_path):
    instance = render_instance(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(tmp_path))  # validates the whole instance schema
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    storage = validate_config(PostgresRunStorage.config_type(), instance["run_storage"]["config"])
    assert storage.success, _errors(storage)


def test_concurrency_in_step_with_repository_dagster_yaml(values):
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert render_concurrency(values["concurrency"]) == local["concurrency"]
    assert local["concurrency"]["pools"]["default_limit"] == 1  # the `gpu` pool


# -- per-step config: the executor and the dagster-k8s/config of each step --------------------


def test_executor_config_is_valid_for_k8s_job_executor(deployment):
    config = k8s.executor_config(deployment["env"])
    result = process_config(k8s_job_executor.config_schema.config_type, config)
    assert result.success, _errors(result)
    assert set(config["per_step_k8s_config"]) == set(k8s.GPU_STEPS)


def test_broken_executor_config_is_rejected():
    schema = k8s_job_executor.config_schema.config_type
    for broken in [
        {"per_step_k8s_config": {"clip_scored_pairs": {"merge_behavior": "SIDEWAYS"}}},
        {"step_k8s_config": {"podSpec": {}}},
        {"max_concurrent": "four"},
    ]:
        assert not process_config(schema, broken).success, broken


def test_step_configs_are_valid_dagster_k8s_config_tags():
    for config in [k8s.gpu_step_k8s_config(), k8s.cpu_step_k8s_config(),
                   k8s.cpu_step_k8s_config({"pool": "cpu"}),
                   k8s.gpu_step_k8s_config(image="registry.example.com/x:1-cuda")]:
        result = validate_config(USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, config)
        assert result.success, _errors(result)
        # The path op tags take: JSON in a tag, parsed and validated by dagster-k8s.
        parsed = get_user_defined_k8s_config({USER_DEFINED_K8S_CONFIG_KEY: json.dumps(config)})
        assert parsed == UserDefinedDagsterK8sConfig.from_dict(config)
    for broken in [{"pod_spec": {}}, {"pod_spec_config": ["not", "a", "dict"]},
                   {**k8s.gpu_step_k8s_config(), "merge_behavior": "shallow"}]:
        assert not validate_config(USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, broken).success, broken
        with pytest.raises(Exception, match=USER_DEFINED_K8S_CONFIG_KEY):
            get_user_defined_k8s_config({USER_DEFINED_K8S_CONFIG_KEY: json.dumps(broken)})


def test_gpu_step_config_asks_for_a_gpu_node():
    config = k8s.gpu_step_k8s_config()
    assert config["pod_spec_config"]["node_selector"] == {GPU_LABEL: "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        config["pod_spec_config"]["tolerations"]
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in json.dumps(k8s.cpu_step_k8s_config())


def test_gpu_steps_are_the_gpu_pool(defs):
    job = defs.resolve_job_def("shard_pipeline")
    assert {n.name for n in job.graph.nodes if n.definition.pool == "gpu"} == set(k8s.GPU_STEPS)


def test_executor_from_environment():
    assert k8s.executor_from_environment({}) is in_process_executor
    assert k8s.executor_from_environment({"LAION_ASSETS_EXECUTOR": "multiprocess"}) is (
        multiprocess_executor)
    executor = k8s.executor_from_environment({"LAION_ASSETS_EXECUTOR": "k8s"})
    assert executor is not None and executor.name == "k8s"
    with pytest.raises(ValueError, match="LAION_ASSETS_EXECUTOR"):
        k8s.executor_from_environment({"LAION_ASSETS_EXECUTOR": "celery"})
    assert k8s.parse_node_selector("a=b, c = d") == {"a": "b", "c": "d"}
    with pytest.raises(ValueError):
        k8s.parse_node_selector("nvidia.com/gpu.present")


# -- where each step's pod lands, rendered by dagster-k8s ------------------------------------


@pytest.fixture
def kubeconfig(tmp_path) -> str:
    """A kubeconfig naming a cluster that is never contacted (clients are built, not used)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "test", "user": {"token": "unused"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return str(path)


def code_location_container_context(deployment: dict) -> dict:
    """The container context the chart gives the code server (includeConfigInLaunchedRuns),
    per `dagsterUserDeployments.k8sContainerContext`."""
    context = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{FULLNAME}-{deployment['name']}-user-env",
                            *_names(deployment.get("envConfigMaps"))],
        "namespace": NAMESPACE,
        "service_account_name": f"{FULLNAME}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    if deployment.get("envSecrets"):
        context["env_secrets"] = _names(deployment["envSecrets"])
    for key, name in [("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
                      ("labels", "labels"), ("resources", "resources"),
                      ("schedulerName", "scheduler_name")]:
        if deployment.get(key):
            context[name] = deployment[key]
    return {"k8s": context}


def rendered_step_jobs(values, deployment, kubeconfig, job) -> dict:
    """The Kubernetes Job of each step of `job`, as the k8s_job_executor would create it."""
    launcher_config = process_config(K8sRunLauncher.config_type(), {
        **render_run_launcher(values), "load_incluster_config": False,
        "kubeconfig_file": kubeconfig})
    assert launcher_config.success, _errors(launcher_config)
    launcher = K8sRunLauncher(**launcher_config.value)
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    container_context = code_location_container_context(deployment)
    K8sContainerContext.create_from_config(container_context)  # validates it
    run = DagsterRun(job_name=job.name, run_id="0" * 36, job_code_origin=JobPythonOrigin(
        job.name, RepositoryPythonOrigin(
            executable_path="/opt/venv/bin/python",
            code_pointer=ModuleCodePointer("laion_assets.definitions", "defs", None),
            container_image=image, container_context=container_context)))
    executor_config = process_config(k8s_job_executor.config_schema.config_type,
                                     k8s.executor_config(deployment["env"]))
    assert executor_config.success, _errors(executor_config)
    executor = k8s_job_executor.executor_creation_fn(SimpleNamespace(
        instance=SimpleNamespace(run_launcher=launcher), executor_config=executor_config.value))
    handler = executor._step_handler  # noqa: SLF001 (dagster-k8s's own merge, not a copy)
    jobs = {}
    for node in job.graph.nodes:
        step_context = SimpleNamespace(
            execute_step_args=SimpleNamespace(step_keys_to_execute=[node.name]),
            dagster_run=run, instance=SimpleNamespace(run_launcher=launcher),
            step_tags={node.name: node.tags},
            get_step_context=lambda key, op=node.name: SimpleNamespace(
                step=SimpleNamespace(op_name=op)),
        )
        context = handler._get_container_context(step_context)  # noqa: SLF001
        jobs[node.name] = construct_dagster_k8s_job(
            job_config=context.get_k8s_job_config(image, launcher),
            args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{node.name}"[:63],
            user_defined_k8s_config=context.run_k8s_config, component="step_worker")
    return jobs


# As shipped; and with a CPU node pool for the steps and a node selector and CPU limit on the
# run pods (which steps inherit): the GPU step must replace them, not add to them.
CPU_POOL = {"env": {"LAION_ASSETS_K8S_CPU_NODE_SELECTOR": "node-pool=cpu"},
            "runK8sConfig": {"podSpecConfig": {"nodeSelector": {"node-pool": "cpu"}},
                             "containerConfig": {"resources": {"limits": {"cpu": "1"}}}}}


@pytest.mark.parametrize("variant", [{}, CPU_POOL], ids=["as-shipped", "cpu-pool"])
def test_gpu_step_lands_on_a_gpu_node_and_cpu_steps_do_not(values, deployment, kubeconfig, defs,
                                                           variant):
    values, deployment = json.loads(json.dumps(values)), json.loads(json.dumps(deployment))
    deployment["env"].update(variant.get("env", {}))
    if "runK8sConfig" in variant:
        values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"] = variant["runK8sConfig"]
    job = defs.resolve_job_def("shard_pipeline")
    jobs = rendered_step_jobs(values, deployment, kubeconfig, job)
    assert {"warc_shards", "extracted_pairs", "downloaded_images", *k8s.GPU_STEPS} <= set(jobs)
    env = deployment["env"]
    cpu_selector = k8s.parse_node_selector(env.get("LAION_ASSETS_K8S_CPU_NODE_SELECTOR", ""))
    for name, rendered in jobs.items():
        pod = rendered.spec.template.spec
        (container,) = pod.containers
        resources = container.resources
        env_from = {(e.config_map_ref.name if e.config_map_ref else None,
                     e.secret_ref.name if e.secret_ref else None) for e in container.env_from}
        # Every step reads the settings and the S3 credentials.
        assert (SETTINGS_CONFIGMAP, None) in env_from and (None, AWS_SECRET) in env_from
        tolerations = {t.key for t in pod.tolerations or []}
        if name in k8s.GPU_STEPS:
            assert pod.node_selector == k8s.parse_node_selector(
                env["LAION_ASSETS_K8S_GPU_NODE_SELECTOR"])
            assert "nvidia.com/gpu" in tolerations
            assert resources.limits["nvidia.com/gpu"] == "1"
            assert resources.requests == k8s.GPU_STEP_RESOURCES["requests"]
            assert container.image == env["LAION_ASSETS_K8S_GPU_IMAGE"]
        else:
            assert (pod.node_selector or {}) == cpu_selector
            assert "nvidia.com/gpu" not in tolerations
            assert "nvidia.com/gpu" not in {**(resources.limits or {}),
                                            **(resources.requests or {})}
            assert resources == _resources(k8s.CPU_STEP_RESOURCES)
            assert container.image.endswith(deployment["image"]["tag"])


def _resources(spec):
    from kubernetes.client import V1ResourceRequirements

    return V1ResourceRequirements(limits=spec.get("limits"), requests=spec.get("requests"))

