"""The broker section of the config becomes every Kafka client's settings."""

from conf.config import PinstreamConfig
from streams.kafka_io import DEFAULT_CLIENT, KafkaClientSettings


def test_the_settings_carry_every_client_value_of_the_broker_config() -> None:
    broker = (
        PinstreamConfig()
        .with_values(
            {
                "broker.client_id": "me",
                "broker.request_timeout_ms": 2000,
                "broker.delivery_timeout_ms": 3000,
                "broker.close_timeout_s": 1.0,
                "broker.fetch_max_wait_ms": 20,
            }
        )
        .broker
    )
    assert KafkaClientSettings.of(broker) == KafkaClientSettings("me", 2000, 3000, 1.0, 20)


def test_the_defaults_agree_with_the_config_defaults() -> None:
    assert KafkaClientSettings.of(PinstreamConfig().broker) == DEFAULT_CLIENT
