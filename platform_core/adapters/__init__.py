"""Adapters that implement the ports in ``platform_core.ports``.

``local``: blobs as files and records in SQLite, for the CLI, the console and tests.
``aws``: S3 and DynamoDB; the only module that imports boto3, imported only by AWS wiring.
"""
