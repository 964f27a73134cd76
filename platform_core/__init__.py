"""Rules and ports of mlbot: configuration, errors, validation, records, storage.

Nothing here imports a chat SDK, boto3 or torch; adapters under ``platform_core.adapters``
translate the ports to files/SQLite (local) or S3/DynamoDB (aws).
"""
