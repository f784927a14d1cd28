//! Kafka's topic name rules (`org.apache.kafka.common.internals.Topic`).

use thiserror::Error;

/// The longest legal topic name. Kafka keeps 249 so that `<name>-<partition>` and the
/// `.deleted`/`-delete` suffixes still fit in a 255-byte file name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Internal topics: they exist for the coordinators, users cannot create them.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Why a topic name is illegal; the `Display` text is sent back to clients as the error message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidTopicName {
    #[error("Topic name is illegal, it can't be empty")]
    Empty,
    #[error("Topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {0}")]
    TooLong(String),
    #[error("Topic name \"{0}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'")]
    IllegalCharacter(String),
    #[error("Topic name \"{0}\" is reserved for an internal topic and cannot be created by users")]
    Internal(String),
}

fn is_legal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

/// Checks the syntax of a topic name (not whether it may be created: see
/// [`validate_new_topic_name`]).
pub fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    if name.is_empty() {
        return Err(InvalidTopicName::Empty);
    }
    if name == "." || name == ".." {
        return Err(InvalidTopicName::Dots);
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(InvalidTopicName::TooLong(name.to_string()));
    }
    if !name.chars().all(is_legal_char) {
        return Err(InvalidTopicName::IllegalCharacter(name.to_string()));
    }
    Ok(())
}

/// Checks a name a user asks to create: legal syntax and not an internal topic.
pub fn validate_new_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    validate_topic_name(name)?;
    if is_internal(name) {
        return Err(InvalidTopicName::Internal(name.to_string()));
    }
    Ok(())
}

/// True for the coordinators' internal topics.
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Kafka refuses a topic whose name differs from an existing one only by '.' versus '_',
/// because metric names replace one with the other.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names() {
        for name in ["a", "my-topic", "my_topic.v2", "A-Z_0.9", &"x".repeat(249)] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn illegal_names() {
        assert_eq!(validate_topic_name(""), Err(InvalidTopicName::Empty));
        assert_eq!(validate_topic_name("."), Err(InvalidTopicName::Dots));
        assert_eq!(validate_topic_name(".."), Err(InvalidTopicName::Dots));
        assert!(matches!(
            validate_topic_name(&"x".repeat(250)),
            Err(InvalidTopicName::TooLong(_))
        ));
        for name in ["a/b", "a b", "ä", "a:b", "a\0", "topic*"] {
            assert!(
                matches!(
                    validate_topic_name(name),
                    Err(InvalidTopicName::IllegalCharacter(_))
                ),
                "{name}"
            );
        }
        // "..." is legal in Kafka: only "." and ".." are refused.
        assert_eq!(validate_topic_name("..."), Ok(()));
    }

    #[test]
    fn internal_names_cannot_be_created() {
        assert!(validate_topic_name("__consumer_offsets").is_ok());
        assert!(matches!(
            validate_new_topic_name("__consumer_offsets"),
            Err(InvalidTopicName::Internal(_))
        ));
        assert!(matches!(
            validate_new_topic_name("__transaction_state"),
            Err(InvalidTopicName::Internal(_))
        ));
        assert!(validate_new_topic_name("__other").is_ok());
    }

    #[test]
    fn collision_chars() {
        assert_eq!(
            unify_collision_chars("a.b_c"),
            unify_collision_chars("a_b.c")
        );
    }
}
