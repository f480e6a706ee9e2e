//! Every safetynet function survives the trip a distributed engine makes a
//! plan take: the coordinator serialises the physical plan with the
//! engine's codec (datafusion-distributed's, over DataFusion's), and a
//! worker — a session built as `safetynet worker` builds one for each task
//! — decodes it by function name and runs it. The answers must be the same
//! as the coordinator's own.

use std::collections::BTreeSet;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use datafusion_distributed::{DistributedCodec, WorkerQueryContext};
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_proto_converter, physical_plan_to_bytes_with_proto_converter,
};
use datafusion_proto::physical_plan::DeduplicatingProtoConverter;
use std::sync::Arc;

/// One call of each function, over the table `t` below. A function added
/// to the registry without a line here fails
/// [`every_function_is_exercised`].
const CALLS: &[(&str, &str)] = &[
    ("sn_name_key", "sn_name_key(name)"),
    ("sn_pinyin", "sn_pinyin(name)"),
    ("sn_id_birth", "CAST(sn_id_birth(id_number) AS VARCHAR)"),
    ("sn_id_gender", "sn_id_gender(id_number)"),
    ("sn_bucket", "sn_bucket(key, 4)"),
    ("sn_mask_id", "sn_mask_id(id_number)"),
    ("sn_mask_name", "sn_mask_name(name)"),
    ("sn_json", "sn_json(name)"),
    (
        "sn_level_chinese_name",
        "sn_level_chinese_name(name, other_name)",
    ),
    (
        "sn_level_chinese_name_keys",
        "sn_level_chinese_name_keys(name, other_name, sn_name_key(name), sn_name_key(other_name), sn_pinyin(name), sn_pinyin(other_name))",
    ),
    (
        "sn_level_date",
        "sn_level_date(birth_date, other_birth_date)",
    ),
    ("sn_level_exact", "sn_level_exact(gender, other_gender)"),
    ("sn_level_gender", "sn_level_gender(gender, other_gender)"),
    (
        "sn_level_id_number",
        "sn_level_id_number(id_number, id_number, other_id_number)",
    ),
    (
        "sn_level_number",
        "sn_level_number('1,5', weight, other_weight)",
    ),
    (
        "sn_level_region",
        "sn_level_region(region_code, other_region_code)",
    ),
    (
        "sn_level_string",
        "sn_level_string('jaro_winkler', '0.95,0.88', name, other_name)",
    ),
];

/// The aggregates, called together per group.
const AGGREGATES: &[&str] = &["sn_best_key", "sn_second_max"];
const AGGREGATE_QUERY: &str = "SELECT grp, sn_best_key(weight, key) AS best, sn_second_max(weight) AS second \
     FROM t GROUP BY grp ORDER BY grp";

/// Four rows: agreeing, near and different values, and one row of nulls.
const ROWS: &str = "SELECT * FROM (VALUES
    ('k1', 'a', '陳麗', '陈丽', '430102199001011234', '430102199001011234', DATE '1990-01-01', DATE '1990-01-01', '女', '女', '430102001001', '430102001002', 10.0, 12.0),
    ('k2', 'a', '王伟', '王玮', '43010219900101123X', '430102199001011243', DATE '1985-03-02', DATE '1985-02-03', '男', '女', '430102001001', '430103001001', 7.5, 8.0),
    ('k3', 'b', '单丽', '覃翠莲', '110101200002020022', '110101200002020030', DATE '2000-02-02', DATE '2001-02-02', '女', '男', '110101002001', '430102001001', 3.0, 3.0),
    ('k4', 'b', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
  ) AS v(key, grp, name, other_name, id_number, other_id_number, birth_date, other_birth_date,
         gender, other_gender, region_code, other_region_code, weight, other_weight)";

/// A session as every command builds one, with `t` read from `file`.
async fn session_over(file: &str) -> SessionContext {
    let ctx = crate::lake::catalog::new_context(1 << 30).unwrap();
    ctx.register_parquet("t", file, ParquetReadOptions::default())
        .await
        .unwrap();
    ctx
}

/// A task's session on a worker, built as `safetynet worker` builds it.
async fn worker_session() -> SessionState {
    crate::distributed::worker::session_for_task(WorkerQueryContext {
        builder: SessionStateBuilder::new().with_default_features(),
        headers: Default::default(),
    })
    .await
    .unwrap()
}

/// `plan` as bytes, with the codec the engine sends stages with.
fn encode(plan: Arc<dyn ExecutionPlan>, ctx: &TaskContext) -> datafusion::common::Result<Vec<u8>> {
    let codec = DistributedCodec::new_combined_with_user(ctx.session_config());
    physical_plan_to_bytes_with_proto_converter(
        plan,
        &codec,
        &DeduplicatingProtoConverter::default(),
    )
    .map(|b| b.to_vec())
}

/// Bytes from [`encode`] as a plan, decoded as a worker decodes a stage.
fn decode(bytes: &[u8], ctx: &TaskContext) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    let codec = DistributedCodec::new_combined_with_user(ctx.session_config());
    physical_plan_from_bytes_with_proto_converter(
        bytes,
        ctx,
        &codec,
        &DeduplicatingProtoConverter::default(),
    )
}

/// The query's answer on the coordinator, and on a worker that decoded
/// the serialised plan.
async fn both_ways(
    coordinator: &SessionContext,
    worker: &SessionState,
    sql: &str,
) -> (String, String) {
    let plan = coordinator
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let bytes =
        encode(plan.clone(), &coordinator.task_ctx()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let decoded = decode(&bytes, &worker.task_ctx()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let here = collect(plan, coordinator.task_ctx()).await.unwrap();
    let there = collect(decoded, worker.task_ctx()).await.unwrap();
    (
        pretty_format_batches(&here).unwrap().to_string(),
        pretty_format_batches(&there).unwrap().to_string(),
    )
}

#[test]
fn every_function_is_exercised() {
    let registered: BTreeSet<String> = super::scalar_functions()
        .iter()
        .map(|f| f.name().to_string())
        .chain(
            super::aggregate_functions()
                .iter()
                .map(|f| f.name().to_string()),
        )
        .collect();
    let called: BTreeSet<String> = CALLS
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(AGGREGATES.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(registered, called);
}

#[tokio::test]
async fn every_function_gives_the_same_answer_after_a_codec_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.parquet").to_string_lossy().into_owned();
    let writer = crate::lake::catalog::new_context(1 << 30).unwrap();
    writer
        .sql(ROWS)
        .await
        .unwrap()
        .write_parquet(&file, Default::default(), None)
        .await
        .unwrap();
    let coordinator = session_over(&file).await;
    let worker = worker_session().await;

    for (name, call) in CALLS {
        let sql = format!("SELECT key, {call} AS v FROM t ORDER BY key");
        let (here, there) = both_ways(&coordinator, &worker, &sql).await;
        assert_eq!(here, there, "{name}");
        // Not a column of nulls: the function really ran.
        let (answers, _) = both_ways(
            &coordinator,
            &worker,
            &format!("SELECT count({call}) AS n FROM t"),
        )
        .await;
        assert!(!answers.contains("| 0 "), "{name} answered nothing: {here}");
    }
    let (here, there) = both_ways(&coordinator, &worker, AGGREGATE_QUERY).await;
    assert_eq!(here, there);
    assert!(here.contains("| a   | k1   | 7.5"), "{here}");

    // A worker that never registered the functions cannot run the plan,
    // and says which function it lacks instead of answering wrongly.
    let bare = SessionContext::new();
    bare.register_parquet("t", &file, ParquetReadOptions::default())
        .await
        .unwrap();
    let plan = coordinator
        .sql("SELECT sn_name_key(name) FROM t")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let bytes = encode(plan, &coordinator.task_ctx()).unwrap();
    let e = decode(&bytes, &bare.task_ctx())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("sn_name_key"), "{e}");
}
