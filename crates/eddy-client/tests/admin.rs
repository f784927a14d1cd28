//! Admin operations against a real `eddy broker`.

mod common;

use eddy_client::{AlterConfigOp, ConfigResource, ConfigSource, ErrorCode, NewTopic, OffsetSpec};

use common::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle() {
    let broker = Broker::start();
    let admin = broker.admin();

    // validate_only creates nothing.
    admin
        .create_topic(NewTopic::new("validated", 2), true)
        .await
        .expect("validate-only create");
    assert!(admin
        .list_topics(false)
        .await
        .unwrap()
        .iter()
        .all(|t| t.name != "validated"));

    let created = admin
        .create_topic(
            NewTopic::new("orders", 3)
                .replication_factor(1)
                .config("retention.ms", "86400000")
                .config("cleanup.policy", "compact"),
            false,
        )
        .await
        .expect("create orders");
    assert_eq!(created.name, "orders");
    assert_eq!(created.num_partitions, 3);
    assert!(!created.topic_id.is_zero());
    admin
        .create_topic(NewTopic::new("other", 1), false)
        .await
        .unwrap();

    let err = admin
        .create_topic(NewTopic::new("orders", 1), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicAlreadyExists));
    assert_eq!(
        err.to_string(),
        "topic 'orders' already exists (TOPIC_ALREADY_EXISTS)"
    );
    let err = admin
        .create_topic(NewTopic::new("bad/name", 1), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidTopicException), "{err}");

    let listed = admin.list_topics(false).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["orders", "other"]);
    assert_eq!(listed[0].partitions, 3);
    assert_eq!(listed[0].topic_id, created.topic_id);

    let d = admin.describe_topic("orders").await.unwrap();
    assert_eq!(d.topic_id, created.topic_id);
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(d.replication_factor(), 1);
    for (i, p) in d.partitions.iter().enumerate() {
        assert_eq!(p.info.partition, i as i32);
        assert!(p.info.leader.is_some());
        assert_eq!(p.info.replicas, vec![p.info.leader.unwrap()]);
        assert_eq!(p.info.isr, p.info.replicas);
        assert_eq!(p.log_start_offset, Some(0));
        assert_eq!(p.log_end_offset, Some(0));
    }
    let retention = d.config("retention.ms").expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert_eq!(
        d.config("cleanup.policy").unwrap().value.as_deref(),
        Some("compact")
    );
    assert!(d
        .config("segment.bytes")
        .expect("defaults are described")
        .is_default());

    // Grow, then refuse to shrink with the broker's INVALID_PARTITIONS.
    admin.create_partitions("orders", 5, false).await.unwrap();
    assert_eq!(
        admin
            .describe_topic("orders")
            .await
            .unwrap()
            .partitions
            .len(),
        5
    );
    let err = admin
        .create_partitions("orders", 2, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidPartitions), "{err}");
    assert!(err.to_string().starts_with("topic 'orders': "), "{err}");
    assert_eq!(
        admin
            .describe_topic("orders")
            .await
            .unwrap()
            .partitions
            .len(),
        5
    );

    // Incremental config changes.
    let topic = ConfigResource::Topic("orders".into());
    admin
        .incremental_alter_configs(
            &topic,
            &[
                AlterConfigOp::Set("retention.ms".into(), "1234567".into()),
                AlterConfigOp::Delete("cleanup.policy".into()),
            ],
            false,
        )
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    let get = |k: &str| configs.iter().find(|c| c.name == k).cloned().unwrap();
    assert_eq!(get("retention.ms").value.as_deref(), Some("1234567"));
    assert_eq!(get("cleanup.policy").value.as_deref(), Some("delete"));
    assert!(get("cleanup.policy").is_default());
    let err = admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set("no.such.config".into(), "1".into())],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidConfig), "{err}");

    // Delete.
    admin.delete_topic("orders").await.unwrap();
    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["other".to_string()]);
    let err = admin.describe_topic("orders").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "topic 'orders' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    );
    let err = admin.delete_topic("orders").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopicOrPartition));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_api_versions() {
    let broker = Broker::start();
    let admin = broker.admin();
    let c = admin.describe_cluster().await.unwrap();
    assert!(c.cluster_id.as_deref().is_some_and(|id| !id.is_empty()));
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.brokers[0].addr(), broker.addr());
    assert_eq!(c.controller_id, Some(c.brokers[0].node_id));
    let (addr, versions) = admin.api_versions().await.unwrap();
    assert_eq!(addr, broker.addr());
    for (key, min, max) in eddy_client::protocol::CLIENT_APIS {
        assert!(
            versions.negotiate(*key, *min, *max, None).is_ok(),
            "no usable version of {key} (broker: {:?})",
            versions.range(*key)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_delete_records() {
    let broker = Broker::start();
    let admin = broker.admin();
    admin
        .create_topic(NewTopic::new("t", 1), false)
        .await
        .unwrap();
    let producer = eddy_client::Producer::new(broker.producer_config()).unwrap();
    // Timestamps 1000, 2000, ..., 10000 at offsets 0..9.
    let futs: Vec<_> = (0..10)
        .map(|i| {
            producer
                .try_send(
                    eddy_client::ProducerRecord::new("t", format!("v{i}"))
                        .partition(0)
                        .timestamp(1000 * (i + 1)),
                )
                .unwrap()
        })
        .collect();
    for (i, f) in futs.into_iter().enumerate() {
        let md = f.await.unwrap();
        assert_eq!(md.offset, i as i64);
    }
    let specs: Vec<(String, i32, OffsetSpec)> = [
        OffsetSpec::Earliest,
        OffsetSpec::Latest,
        OffsetSpec::Timestamp(0),
        OffsetSpec::Timestamp(2000),
        OffsetSpec::Timestamp(2500),
        OffsetSpec::Timestamp(10_000),
        OffsetSpec::Timestamp(10_001),
        OffsetSpec::MaxTimestamp,
    ]
    .into_iter()
    .map(|s| ("t".to_string(), 0, s))
    .collect();
    let got: Vec<i64> = admin
        .list_offsets(&specs)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(got, vec![0, 10, 0, 1, 2, 9, -1, 9]);
    let by_ts = admin
        .list_offsets(&[("t".to_string(), 0, OffsetSpec::Timestamp(2500))])
        .await
        .unwrap();
    assert_eq!(by_ts[0].as_ref().unwrap().timestamp, 3000);

    // Unknown partition / topic.
    let r = admin
        .list_offsets(&[
            ("t".to_string(), 7, OffsetSpec::Latest),
            ("nope".to_string(), 0, OffsetSpec::Latest),
        ])
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().code(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        r[1].as_ref().unwrap_err().code(),
        Some(ErrorCode::UnknownTopicOrPartition)
    );

    let low = admin
        .delete_records(&[("t".to_string(), 0, 4)])
        .await
        .unwrap();
    assert_eq!(low[0].as_ref().unwrap(), &4);
    let d = admin.describe_topic("t").await.unwrap();
    assert_eq!(d.partitions[0].log_start_offset, Some(4));
    assert_eq!(d.partitions[0].log_end_offset, Some(10));
}
