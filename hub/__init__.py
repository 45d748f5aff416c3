"""lerec hub: MQTT ingest daemon, storage, database and the admin service."""
