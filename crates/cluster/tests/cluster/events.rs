//! Job-event fan-out between replicas through the shared Redis.

use std::time::Duration;

use accord_cluster::JobNotice;
use accord_model::JobState;
use tokio::sync::broadcast;

use crate::support::{self, notice, two_replicas, within};

async fn next(receiver: &mut broadcast::Receiver<JobNotice>) -> JobNotice {
    within(Duration::from_secs(5), "a job notice", receiver.recv())
        .await
        .expect("the bus is open")
}

#[tokio::test]
async fn a_notice_published_on_one_replica_reaches_the_other() {
    let (a, b) = two_replicas().await;
    let mut on_b = b.events().subscribe();
    let sent = notice(JobState::Running);
    a.events().publish(sent);
    assert_eq!(next(&mut on_b).await, sent);
    let back = notice(JobState::Succeeded);
    b.events().publish(back);
    assert_eq!(next(&mut on_b).await, back, "b's own notice, locally");
}

#[tokio::test]
async fn a_replica_sees_its_own_notice_exactly_once() {
    let (a, b) = two_replicas().await;
    let mut on_a = a.events().subscribe();
    let mut on_b = b.events().subscribe();
    let own = notice(JobState::Running);
    a.events().publish(own);
    assert_eq!(next(&mut on_a).await, own, "delivered locally at once");
    // Once b has it, Redis has delivered it to a's subscription as well;
    // a notice b publishes afterwards reaches a behind any echo of it.
    assert_eq!(next(&mut on_b).await, own);
    let marker = notice(JobState::Succeeded);
    b.events().publish(marker);
    assert_eq!(
        next(&mut on_a).await,
        marker,
        "no second copy of a's own notice"
    );
}

#[tokio::test]
async fn deployments_with_different_prefixes_do_not_hear_each_other() {
    let url = support::shared_redis_url();
    let other_prefix = support::unique_prefix();
    let other_a = support::replica(&url, &other_prefix, "other-a").await;
    let other_b = support::replica(&url, &other_prefix, "other-b").await;
    let (a, b) = two_replicas().await;
    let mut on_other_b = other_b.events().subscribe();
    let mut on_b = b.events().subscribe();
    a.events().publish(notice(JobState::Dead));
    next(&mut on_b).await;
    // Had the other deployment shared the channel, Redis would have queued
    // a's notice to other-b's subscription before this one.
    let marker = notice(JobState::Cancelled);
    other_a.events().publish(marker);
    assert_eq!(next(&mut on_other_b).await, marker);
}
