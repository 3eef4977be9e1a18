"""The Kafka clients under the SDK: producer, topic follower, admin, diagnosis."""
