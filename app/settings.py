"""Every limit and knob of the server, in one place, overridable by NN_PLAYGROUND_* env vars."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Limits are settings, not literals: every 422 names the setting's value as its limit."""

    model_config = SettingsConfigDict(env_prefix="NN_PLAYGROUND_")

    host: str = "127.0.0.1"
    port: int = 8000

    max_sessions: int = 200
    max_hidden_layers: int = 8
    max_units_per_layer: int = 16
    max_samples: int = 5000
    max_grid_resolution: int = 200
    max_frame_rate: float = 60.0
    default_frame_rate: float = 30.0
    max_speed: float = 1000.0  # epochs per second a session's `speed` may ask for
    max_epoch_budget: int = 1_000_000
    max_upload_bytes: int = 1_000_000
    max_batch_size: int = 1000
    session_idle_seconds: float = 600.0
    # Time travel: the full-state checkpoints each live session records (H3, issue 10).
    checkpoint_memory_bytes: int = 2_000_000
    allowed_origins: list[str] = [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
    ]
    worker_processes: int | None = None  # None = CPU count; 0 = one worker thread in-process
    max_step_epochs: int = 100_000
    max_predict_points: int = 10_000
    send_timeout_seconds: float = 10.0
    command_timeout_seconds: float = 60.0
    max_history_in_hello: int = 100_000
    max_pending_epochs: int = 200_000
    # A websocket message (the server's ws_max_size): a `set` carrying max_samples points is
    # ~0.4 MB, as its REST PATCH is (max_body_bytes); anything longer is closed with 1009.
    max_ws_message_bytes: int = 1_000_000
    grid_extent: float = 6.0
    max_import_bytes: int = 64_000_000
    max_rows_per_frame: int = 160
    max_pending_lockstep_bytes: int = 32_000_000
    # Races and perceptron runs compute in the web process's threadpool: keep each call short.
    max_racers: int = 8
    max_race_step_epochs: int = 1000
    max_perceptron_epochs: int = 1000

    # ---- owners, quotas, hosts and origins (issue 9: app/api/owners.py, manager) ----
    max_owners: int = 10_000  # owner token hashes remembered; the least recently used idle ones go
    max_sessions_per_owner: int = 10  # live sessions one owner token may hold
    max_sessions_per_address: int = 60  # live sessions created from one client address
    max_running_per_owner: int = 4  # sessions of one owner training at once (play / step)
    max_running_per_address: int = 30  # sessions of one client address training at once
    quota_retry_after_seconds: int = 5  # Retry-After of a quota's 429 (a run may end by then)
    unwatched_pause_seconds: float = 30.0  # a running session nobody watches or calls is paused
    allowed_hosts: list[str] = ["127.0.0.1", "localhost", "::1"]  # Host header allow-list
    cors_origins: list[str] = []  # origins allowed cross-origin REST calls (CORS off when empty)

    # ---- jobs: races, replays, long steps in the workers (issue 9) ----
    job_wait_seconds: float = 1.0  # a long route waits this long, then answers 202 with a job
    max_job_seconds: float = 600.0  # a job running longer than this is stopped (failed)
    job_keep_seconds: float = 600.0  # a finished job's result stays readable this long
    max_jobs_per_owner: int = 4  # running jobs (race steps, replays, REST steps) per owner
    max_races_per_owner: int = 4  # live races per owner
    max_replays_per_owner: int = 4  # live time-travel replays per owner
    max_job_memory_bytes_per_owner: int = 256_000_000  # races + replays of one owner
    max_job_memory_bytes: int = 2_000_000_000  # races + replays of all owners together

    # ---- edges: bodies, websocket, slow consumers (issue 9) ----
    max_body_bytes: int = 1_000_000  # JSON body of any route but parse-csv and import (413)
    max_id_length: int = 64  # session/race/job ids in paths (a longer one is a 404 or 4404)
    ws_send_buffer_bytes: int = 65_536  # SO_SNDBUF of an accepted websocket's TCP socket

    # ---- operations: rate limits, metrics, logs (issue 9) ----
    rate_limit_per_second: float = 20.0  # requests per client address, sustained (0 = off)
    rate_limit_window_seconds: int = 10  # the moving window the sustained rate is counted over
    rate_limit_burst: int = 60  # most requests per address in any one second (>= per_second)
    trusted_proxies: list[str] = []  # IPs/CIDRs whose X-Forwarded-For names the client
    metrics_enabled: bool = True  # serve GET /metrics (Prometheus text format)
    log_level: str = "INFO"  # level of the JSON-lines log of the nn_playground logger

    # ---- classroom (issue 10, H5: app/classroom, app/api/routes/classes.py) ----
    max_classes: int = 1000  # classes the server keeps in all (429 beyond)
    max_classes_per_owner: int = 5  # classes created with one owner token (Authorization)
    max_classes_per_address: int = 20  # classes created from one client address
    max_learners_per_class: int = 100  # sessions attached to one class (429 beyond)
    max_class_watchers: int = 4  # dashboards open on one class at once (4429 beyond)
    tile_fps: float = 2.0  # a dashboard's tiles refresh at most this often (per learner)
    tile_size: int = 24  # a tile is tile_size x tile_size uint8 (the learner's output grid)
    max_preset_bytes: int = 262_144  # body of a pushed preset (validated once, then sent to all)

    # ---- saved runs, share links, gallery (issue 10: app/runs, app/api/routes/runs.py) ----
    max_runs_per_owner: int = 50  # saved runs one owner token may keep (429 when reached)
    max_run_title_chars: int = 120  # a run's title (the runs.title column holds 120)
    max_run_bytes: int = 32_000_000  # a run's gzip export stored in the database
    run_thumbnail_size: int = 32  # the boundary thumbnail's grid (size x size bytes)
    max_gallery_runs: int = 100  # most runs one GET /api/runs answers (its `limit`)
    max_gallery_offset: int = 10_000  # deepest page of the gallery (its `offset`)
    run_view_cache_bytes: int = 64_000_000  # built /r/{slug} views kept in memory (immutable)
    max_run_view_builds: int = 2  # /r/{slug} views a worker builds at once (others wait)

    # ---- storage: the database of sessions, runs and classes (issue 10, app/storage) ----
    data_dir: Path = Path("data")  # created on start; holds playground.db unless database_url
    database_url: str | None = None  # e.g. postgresql+psycopg://user@host/db; None = SQLite
    checkpoint_seconds: float = 5.0  # a changing session is checkpointed at most this often
    database_threads: int = 4  # threads (and pooled connections) that run database calls
    max_checkpoint_backlog_bytes: int = 256_000_000  # unwritten checkpoints held; more dropped
    history_chunk_bytes: int = 1_000_000  # a session's newest history chunks merge up to this

    # ---- sessions that last (issue 10, H2: app/sessions/checkpointing.py, restore.py) ----
    # checkpoint_seconds <= 0 turns checkpoints (and restores) off: sessions live in memory only.
    standby_worker: bool = True  # a warmed spare worker process replaces a dead one at once
    max_stored_sessions_per_owner: int = 100  # live + stored (idle-evicted) sessions per owner

    # ---- export code (issue 11, H3: app/codegen, app/api/routes/code.py) ----
    code_replay_max_steps: int = 250_000  # epochs x points replayed (~0.5 s) to vouch for a past
    code_run_recipes: int = 32  # saved runs' recipes the web process keeps (each up to ~1 MB)

    # ---- scale-out (issue 12, H5: app/backends, docs/deploy.md) ----
    backend: Literal["local", "ray"] = "local"  # where sessions live: worker processes or Ray
    ray_address: str | None = None  # cluster to join; None = RAY_ADDRESS, else a local cluster
    ray_namespace: str = "nn_playground"  # the Ray namespace of the shard and directory actors
    ray_shards: int = 2  # shard actors (each runs one Worker loop hosting many sessions)
    ray_shard_cpus: float = 1.0  # CPUs each shard actor reserves (Ray places them by this)
    ray_pull_interval: float = 0.01  # s between two batches a shard sends a replica (TCP)
    # s without a message (or the 1/s heartbeat) after which a shard drops a replica's connection
    ray_replica_timeout: float = 10.0


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
