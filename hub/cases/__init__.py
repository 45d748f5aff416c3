"""Cases: carrying an enforcement case through every step of the regulation.

- ``service``: open cases, add and change records (every version kept), stages, approvals,
  archive, search, visibility; ``CaseStepSource`` for hub/oversight's clip linking.
- ``attachments``: files in the blob store with 第二十七条 metadata and transcripts.
- ``snapshot``: the database as a ``CaseSnapshot`` for ``lerec.hub.rules.evaluate``.
- ``links_adapter``: the one place that knows where clip links are stored.
- ``transcribe``: speech-recognition plug-in point (Protocol + registry; none required).
- ``users``: users with argon2id password hashes.
- ``forms``: HTML form values <-> typed record fields.
"""
