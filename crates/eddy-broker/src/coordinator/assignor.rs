//! Server-side assignors of KIP-848 consumer groups: `uniform` and `range`.

/// The short name of an assignor given by name or by Kafka's class name.
pub fn short_name(s: &str) -> &str {
    match s {
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.UniformAssignor" => "uniform",
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.RangeAssignor" => "range",
        other => other,
    }
}
