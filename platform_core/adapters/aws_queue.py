"""The training queue on Amazon SQS: one message (a ticket) per submitted job, a dead-letter queue for tickets
delivered too often. SQS does delivery, visibility and redelivery; platform_core.scheduling decides which job
a ticket's receiver trains.

Messages carry ``MessageGroupId`` = the tenant, so SQS fair queues keep one tenant's backlog from raising
everyone's dwell time (the SDK and moto accept it on standard queues; moto does not model fair delivery,
and the worker's fair claim order, not SQS, is what the tests hold to).
"""
from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from platform_core.adapters.aws import LazyClient, aws_errors
from platform_core.jobs import Job, QueueDepth, Ticket

log = logging.getLogger(__name__)
MAX_WAIT_S = 20  # SQS long polling waits at most 20 s per call
_GONE = ("ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight",
         "AWS.SimpleQueueService.MessageNotInflight")


class SqsTrainingQueue:
    """TrainingQueue over one SQS standard queue (``queue_url``) and its dead-letter queue (``dead_letter_url``)."""

    def __init__(self, *, queue_url: str, dead_letter_url: str = "", client: Any = None) -> None:
        self._url, self._dead = queue_url, dead_letter_url
        self._sqs = LazyClient("sqs", client)

    def send(self, job: Job, generation: int = 0) -> None:
        body = json.dumps({"job_id": job.job_id, "tenant": job.tenant, "generation": generation})
        with aws_errors("send", job.job_id):
            self._sqs().send_message(QueueUrl=self._url, MessageBody=body, MessageGroupId=_group(job.tenant))

    def receive(self, wait_s: float, visibility_s: float) -> Ticket | None:
        tickets = self._receive(self._url, wait_s, visibility_s, 1)
        return tickets[0] if tickets else None

    def _receive(self, url: str, wait_s: float, visibility_s: float, count: int) -> list[Ticket]:
        with aws_errors("receive", url):
            response = self._sqs().receive_message(
                QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=int(min(max(wait_s, 0), MAX_WAIT_S)),
                VisibilityTimeout=int(visibility_s), MessageSystemAttributeNames=["ApproximateReceiveCount"])
        return [_ticket(message) for message in response.get("Messages", [])]

    def extend(self, ticket: Ticket, visibility_s: float) -> bool:
        try:
            self._sqs().change_message_visibility(QueueUrl=self._url, ReceiptHandle=ticket.receipt,
                                                  VisibilityTimeout=int(visibility_s))
        except ClientError as exc:
            if _code(exc) in _GONE:
                return False
            raise
        return True

    def release(self, ticket: Ticket) -> None:
        if not self.extend(ticket, 0):
            log.info("ticket for job %s was no longer held", ticket.job_id)

    def delete(self, ticket: Ticket) -> None:
        self._delete(self._url, ticket)

    def _delete(self, url: str, ticket: Ticket) -> None:
        try:
            self._sqs().delete_message(QueueUrl=url, ReceiptHandle=ticket.receipt)
        except ClientError as exc:
            if _code(exc) not in _GONE:
                raise
            log.info("ticket for job %s was already gone", ticket.job_id)

    def depth(self) -> QueueDepth:
        with aws_errors("depth", self._url):
            attributes = self._sqs().get_queue_attributes(
                QueueUrl=self._url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
        return QueueDepth(waiting=int(attributes.get("ApproximateNumberOfMessages", 0)),
                          in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)))

    def dead_letters(self, limit: int = 10) -> list[Ticket]:
        if not self._dead:
            return []
        return self._receive(self._dead, 0, 60, max(1, min(limit, 10)))

    def remove_dead_letter(self, ticket: Ticket) -> None:
        if self._dead:
            self._delete(self._dead, ticket)


def _group(tenant: str) -> str:
    """A MessageGroupId (up to 128 printable ASCII characters) for the tenant."""
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in tenant)[:128]
    return cleaned or "none"


def _ticket(message: dict[str, Any]) -> Ticket:
    """A ticket from an SQS message; a body that is not ours still counts as a ticket (any ticket is one unit
    of work), with no job id."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    generation = body.get("generation")
    return Ticket(job_id=str(body.get("job_id") or ""), receipt=message["ReceiptHandle"], receive_count=count,
                  tenant=str(body.get("tenant") or ""), generation=generation if isinstance(generation, int) else 0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
