//! Aggregates that pick each record's best candidate without sorting the
//! candidate pairs:
//!
//! | function | returns per group |
//! |---|---|
//! | `sn_best_key(rank, key)` | the key with the highest rank; on a tie the smallest key |
//! | `sn_second_max(x)` | the second-largest value (a tie with the largest counts); NULL below two values |
//!
//! A window sorted by weight gives the same answers, but sorting every
//! candidate pair is what ran out of memory at ten million records. These
//! keep a few bytes per record, in one hash aggregation that spills.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

/// What one group remembers. `update` reads the function's arguments,
/// `merge` the columns `state` wrote; both at one row.
trait GroupState: Default + Clone + Debug + Send + Sync + 'static {
    const NAME: &'static str;
    /// What the function returns, for `information_schema.routines`.
    const DESCRIPTION: &'static str;
    const SYNTAX: &'static str;
    fn arguments() -> Vec<DataType>;
    fn result() -> DataType;
    fn state_fields() -> Vec<FieldRef>;
    fn update(&mut self, columns: &[ArrayRef], row: usize);
    fn merge(&mut self, columns: &[ArrayRef], row: usize);
    fn state(groups: &[Self]) -> Vec<ArrayRef>;
    fn evaluate(groups: &[Self]) -> ArrayRef;
}

fn float_at(column: &ArrayRef, row: usize) -> Option<f64> {
    let a = column.as_primitive::<Float64Type>();
    a.is_valid(row).then(|| a.value(row))
}

fn text_at(column: &ArrayRef, row: usize) -> Option<&str> {
    let a = column.as_string::<i32>();
    a.is_valid(row).then(|| a.value(row))
}

/// The two largest values seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopTwo {
    first: Option<f64>,
    second: Option<f64>,
}

impl TopTwo {
    fn push(&mut self, v: f64) {
        match self.first {
            Some(f) if v > f => {
                self.second = self.first;
                self.first = Some(v);
            }
            Some(_) => {
                if self.second.is_none_or(|s| v > s) {
                    self.second = Some(v);
                }
            }
            None => self.first = Some(v),
        }
    }
}

impl GroupState for TopTwo {
    const NAME: &'static str = "sn_second_max";
    const DESCRIPTION: &'static str = "The second-largest value of the group (a tie with the largest counts); NULL below two values.";
    const SYNTAX: &'static str = "sn_second_max(match_weight)";
    fn arguments() -> Vec<DataType> {
        vec![DataType::Float64]
    }
    fn result() -> DataType {
        DataType::Float64
    }
    fn state_fields() -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new("first", DataType::Float64, true)),
            Arc::new(Field::new("second", DataType::Float64, true)),
        ]
    }
    fn update(&mut self, columns: &[ArrayRef], row: usize) {
        if let Some(v) = float_at(&columns[0], row) {
            self.push(v);
        }
    }
    fn merge(&mut self, columns: &[ArrayRef], row: usize) {
        for c in &columns[..2] {
            if let Some(v) = float_at(c, row) {
                self.push(v);
            }
        }
    }
    fn state(groups: &[Self]) -> Vec<ArrayRef> {
        let first: Float64Array = groups.iter().map(|g| g.first).collect();
        let second: Float64Array = groups.iter().map(|g| g.second).collect();
        vec![Arc::new(first), Arc::new(second)]
    }
    fn evaluate(groups: &[Self]) -> ArrayRef {
        Arc::new(groups.iter().map(|g| g.second).collect::<Float64Array>())
    }
}

/// The highest-ranked key seen; the smallest key among equal ranks, so the
/// choice does not depend on the order rows arrive in.
#[derive(Debug, Clone, Default)]
pub struct BestKey {
    best: Option<(f64, String)>,
}

impl BestKey {
    fn offer(&mut self, rank: f64, key: &str) {
        let better = match &self.best {
            None => true,
            Some((r, k)) => rank > *r || (rank == *r && key < k.as_str()),
        };
        if better {
            self.best = Some((rank, key.to_string()));
        }
    }
}

impl GroupState for BestKey {
    const NAME: &'static str = "sn_best_key";
    const DESCRIPTION: &'static str = "The key with the highest rank in the group; on a tie the smallest key, so the answer does not depend on row order.";
    const SYNTAX: &'static str = "sn_best_key(match_weight, person_key)";
    fn arguments() -> Vec<DataType> {
        vec![DataType::Float64, DataType::Utf8]
    }
    fn result() -> DataType {
        DataType::Utf8
    }
    fn state_fields() -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new("rank", DataType::Float64, true)),
            Arc::new(Field::new("key", DataType::Utf8, true)),
        ]
    }
    fn update(&mut self, columns: &[ArrayRef], row: usize) {
        if let (Some(rank), Some(key)) = (float_at(&columns[0], row), text_at(&columns[1], row)) {
            self.offer(rank, key);
        }
    }
    fn merge(&mut self, columns: &[ArrayRef], row: usize) {
        self.update(columns, row);
    }
    fn state(groups: &[Self]) -> Vec<ArrayRef> {
        let rank: Float64Array = groups
            .iter()
            .map(|g| g.best.as_ref().map(|b| b.0))
            .collect();
        vec![Arc::new(rank), Self::evaluate(groups)]
    }
    fn evaluate(groups: &[Self]) -> ArrayRef {
        let keys: StringArray = groups
            .iter()
            .map(|g| g.best.as_ref().map(|b| b.1.as_str()))
            .collect();
        Arc::new(keys)
    }
}

/// Casts the arguments to the declared types (a `Utf8View` key, say).
fn typed(columns: &[ArrayRef], types: &[DataType]) -> Result<Vec<ArrayRef>> {
    columns
        .iter()
        .zip(types)
        .map(|(c, t)| Ok(cast(c, t)?))
        .collect()
}

fn kept(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|m| m.is_valid(row) && m.value(row))
}

/// The aggregate function over one kind of group state.
#[derive(Debug)]
struct GroupAggregate<S> {
    signature: Signature,
    documentation: Documentation,
    _state: PhantomData<fn() -> S>,
}

impl<S> PartialEq for GroupAggregate<S> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}
impl<S> Eq for GroupAggregate<S> {}
impl<S: GroupState> Hash for GroupAggregate<S> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        S::NAME.hash(state);
    }
}

fn udaf<S: GroupState>() -> AggregateUDF {
    AggregateUDF::from(GroupAggregate::<S> {
        signature: Signature::exact(S::arguments(), Volatility::Immutable),
        documentation: super::documentation(S::DESCRIPTION, S::SYNTAX),
        _state: PhantomData,
    })
}

/// `sn_best_key(rank, key)`.
pub fn best_key() -> AggregateUDF {
    udaf::<BestKey>()
}

/// `sn_second_max(x)`.
pub fn second_max() -> AggregateUDF {
    udaf::<TopTwo>()
}

impl<S: GroupState> AggregateUDFImpl for GroupAggregate<S> {
    fn name(&self) -> &str {
        S::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(S::result())
    }
    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(S::state_fields())
    }
    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup::<S>::default()))
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ManyGroups::<S>(Vec::new())))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// For an aggregate without GROUP BY.
#[derive(Debug, Default)]
struct OneGroup<S>(S);

impl<S: GroupState> Accumulator for OneGroup<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = typed(values, &S::arguments())?;
        for row in 0..values.first().map_or(0, |v| v.len()) {
            self.0.update(&values, row);
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states.first().map_or(0, |v| v.len()) {
            self.0.merge(states, row);
        }
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        S::state(std::slice::from_ref(&self.0))
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&S::evaluate(std::slice::from_ref(&self.0)), 0)
    }
    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// For GROUP BY: one state per group, indexed as DataFusion numbers them.
struct ManyGroups<S>(Vec<S>);

impl<S: GroupState> GroupsAccumulator for ManyGroups<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0
            .resize(total_num_groups.max(self.0.len()), S::default());
        let values = typed(values, &S::arguments())?;
        for (row, &group) in group_indices.iter().enumerate() {
            if kept(opt_filter, row) {
                self.0[group].update(&values, row);
            }
        }
        Ok(())
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0
            .resize(total_num_groups.max(self.0.len()), S::default());
        for (row, &group) in group_indices.iter().enumerate() {
            self.0[group].merge(values, row);
        }
        Ok(())
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(S::evaluate(&emit_to.take_needed(&mut self.0)))
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(S::state(&emit_to.take_needed(&mut self.0)))
    }
    /// Each row as a group of its own (when DataFusion skips the partial
    /// aggregation because it barely reduces the rows).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = typed(values, &S::arguments())?;
        let rows = values.first().map_or(0, |v| v.len());
        let groups: Vec<S> = (0..rows)
            .map(|row| {
                let mut g = S::default();
                if kept(opt_filter, row) {
                    g.update(&values, row);
                }
                g
            })
            .collect();
        Ok(S::state(&groups))
    }
    fn size(&self) -> usize {
        // Keys are short person IDs; count their bytes roughly, per group.
        self.0.capacity() * (size_of::<S>() + 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn per_group(select: &str, values: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        ctx.register_udaf(best_key());
        ctx.register_udaf(second_max());
        let batches = ctx
            .sql(&format!(
                "SELECT g, CAST({select} AS VARCHAR) FROM (VALUES {values}) t(g, x, k) GROUP BY g ORDER BY g"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out = Vec::new();
        for b in batches {
            let v = cast(b.column(1), &DataType::Utf8).unwrap();
            let v = v.as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push(if v.is_valid(i) {
                    v.value(i).to_string()
                } else {
                    "NULL".into()
                });
            }
        }
        out
    }

    const ROWS: &str = "(1, 5.0, 'c'), (1, 9.0, 'b'), (1, 7.0, 'a'), (2, 3.0, 'z'), (2, 3.0, 'y'), \
        (3, 4.0, 'q'), (3, NULL, 'p'), (4, -2.0, 'm'), (4, -1.0, NULL), (4, -8.0, 'n')";

    #[tokio::test]
    async fn second_largest_per_group_with_ties_and_nulls() {
        let got = per_group("sn_second_max(CAST(x AS DOUBLE))", ROWS).await;
        assert_eq!(got, ["7.0", "3.0", "NULL", "-2.0"]);
    }

    #[tokio::test]
    async fn best_key_takes_the_highest_rank_and_the_smallest_key_on_a_tie() {
        let got = per_group("sn_best_key(CAST(x AS DOUBLE), k)", ROWS).await;
        assert_eq!(got, ["b", "y", "q", "m"]);
    }

    /// Two partial aggregations merged give the answer of one.
    fn split_and_merge<S: GroupState>(columns: &[ArrayRef]) -> ArrayRef {
        let half =
            |from: usize| -> Vec<ArrayRef> { columns.iter().map(|c| c.slice(from, 2)).collect() };
        let mut left = ManyGroups::<S>(Vec::new());
        let mut right = ManyGroups::<S>(Vec::new());
        left.update_batch(&half(0), &[0, 0], None, 1).unwrap();
        right.update_batch(&half(2), &[0, 0], None, 1).unwrap();
        let state = right.state(EmitTo::All).unwrap();
        left.merge_batch(&state, &[0], 1).unwrap();
        left.evaluate(EmitTo::All).unwrap()
    }

    #[test]
    fn partial_states_merge_into_the_same_answer() {
        let rank: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 4.0, 3.0, 4.0]));
        let key: ArrayRef = Arc::new(StringArray::from(vec!["a", "d", "c", "b"]));
        let second = split_and_merge::<TopTwo>(std::slice::from_ref(&rank));
        assert_eq!(second.as_primitive::<Float64Type>().value(0), 4.0);
        let best = split_and_merge::<BestKey>(&[rank, key]);
        assert_eq!(best.as_string::<i32>().value(0), "b");
    }
}
