package io.adclick.flink.audit;

/** What a tally counts. */
public enum AuditKind {
    ACCEPTED, DUPLICATE, REJECTED
}
