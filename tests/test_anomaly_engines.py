"""score_partition on real distributed engines: a Dask LocalCluster with worker processes over
Parquet files, and Spark's mapInPandas on a local SparkSession. Both must give `vaekit detect
score`'s numbers row for row. Each engine is an optional extra (vaekit[dask], vaekit[spark]); a
test skips with its reason when its engine is not installed."""

from __future__ import annotations

import functools
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from vaekit.anomaly import VAEDetector, score_partition
from vaekit.cli import main


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A saved detector, four Parquet parts of rows to score, and `detect score`'s output for them."""
    d = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"tx_id": np.arange(n), "amount": rng.lognormal(3, 1, n), "hour": rng.normal(12, 4, n),
                       "items": rng.poisson(2, n).astype(float), "shop": rng.choice(["a", "b", "c"], n)})
    df.loc[::97, "amount"] *= 40
    VAEDetector(categorical=["shop"], n_steps=100, hidden=(16,)).fit(df.drop(columns=["tx_id"])).save(d / "det")
    parts = d / "parts"
    parts.mkdir()
    for i in range(4):
        df.iloc[i * n // 4 : (i + 1) * n // 4].to_parquet(parts / f"part-{i}.parquet", index=False)
    df.to_csv(d / "all.csv", index=False)
    assert main(["detect", "score", str(d / "det"), str(d / "all.csv"), "--out", str(d / "cli.csv"),
                 "--id-column", "tx_id", "--quiet"]) == 0
    return d, pd.read_csv(d / "cli.csv")


def as_written(scores) -> np.ndarray:
    """Scores as the CLI's CSV holds them (9 significant digits), to compare with it exactly."""
    return np.array([float(f"{v:.9g}") for v in scores])


def test_score_partition_matches_the_cli_and_keeps_the_index(scored):
    d, cli = scored
    df = pd.read_csv(d / "all.csv")
    part = df.iloc[500:900]
    out = score_partition(d / "det", part, keep=["tx_id"])
    assert list(out.columns) == ["tx_id", "score", "is_anomaly"] and out.index.equals(part.index)
    np.testing.assert_array_equal(as_written(out["score"]), cli["score"].iloc[500:900])
    np.testing.assert_array_equal(out["is_anomaly"], cli["is_anomaly"].iloc[500:900])
    empty = score_partition(d / "det", df.iloc[:0], keep=["tx_id"])
    assert len(empty) == 0 and empty["score"].dtype == np.float64 and empty["is_anomaly"].dtype == np.int64


@pytest.mark.slow
def test_dask_local_cluster_over_parquet(scored):
    pytest.importorskip("dask.dataframe", reason="Dask is an optional extra: pip install 'vaekit[dask]'")
    distributed = pytest.importorskip("distributed", reason="Dask's scheduler is an optional extra: pip install 'vaekit[dask]'")
    import dask.dataframe as dd

    d, cli = scored
    meta = pd.DataFrame({"tx_id": pd.Series(dtype="int64"), "score": pd.Series(dtype="float64"),
                         "is_anomaly": pd.Series(dtype="int64")})
    # Real worker processes (not threads): each one loads the detector once and caches it.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        frame = dd.read_parquet(str(d / "parts" / "*.parquet"))
        assert frame.npartitions == 4
        # score_partition takes the folder first: partial() puts each partition second.
        score = functools.partial(score_partition, str(d / "det"), keep=["tx_id"])
        got = frame.map_partitions(score, meta=meta).compute()
        assert len(client.scheduler_info()["workers"]) == 2
    got = got.sort_values("tx_id").reset_index(drop=True)
    np.testing.assert_array_equal(got["tx_id"], cli["tx_id"])
    np.testing.assert_array_equal(as_written(got["score"]), cli["score"])  # bit-identical across processes
    np.testing.assert_array_equal(got["is_anomaly"], cli["is_anomaly"])


@pytest.mark.slow
def test_spark_map_in_pandas(scored, monkeypatch):
    pytest.importorskip("pyspark", reason="Spark is an optional extra: pip install 'vaekit[spark]' (needs Java 17+)")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (java on PATH); install openjdk-17-jre-headless")
    from pyspark.sql import SparkSession

    d, cli = scored
    # Spark's Python workers must run this interpreter, where vaekit is installed (read at JVM start).
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (SparkSession.builder.master("local[2]").appName("vaekit-test").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    try:
        frame = spark.read.parquet(str(d / "parts"))
        det = str(d / "det")

        def score(batches):
            for b in batches:
                yield score_partition(det, b, keep=["tx_id"])

        got = frame.mapInPandas(score, schema="tx_id long, score double, is_anomaly long").toPandas()
    finally:
        spark.stop()
    got = got.sort_values("tx_id").reset_index(drop=True)
    np.testing.assert_array_equal(got["tx_id"], cli["tx_id"])
    np.testing.assert_array_equal(as_written(got["score"]), cli["score"])  # bit-identical across processes
    np.testing.assert_array_equal(got["is_anomaly"], cli["is_anomaly"])
