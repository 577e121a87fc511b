//! nnunetv2's `dataset.json`: channel names, labels by name (regions as lists), file ending.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

use crate::error::{Error, Result};

use super::plans::{opt_field, J};

/// The value of one `labels` entry: a label, or a region (the union of several labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelValue {
    /// `"liver": 1`
    Label(i64),
    /// `"whole tumor": [1, 2, 3]` (region-based training).
    Region(Vec<i64>),
}

/// `labels` in file order (the order matters for regions: it is the order of the network's outputs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(pub Vec<(String, LabelValue)>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Labels, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of label names to integers or lists of integers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Labels, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Json>()? {
                    let lv = match &v {
                        Json::Number(n) => n.as_i64().map(LabelValue::Label),
                        Json::Array(a) => a
                            .iter()
                            .map(Json::as_i64)
                            .collect::<Option<Vec<i64>>>()
                            .map(|r| {
                                if r.len() == 1 {
                                    LabelValue::Label(r[0])
                                } else {
                                    LabelValue::Region(r)
                                }
                            }),
                        _ => None,
                    };
                    let lv = lv.ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "labels/{k}: expected an integer or a list of integers, found {v}"
                        ))
                    })?;
                    out.push((k, lv));
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct LabelsOnly {
    labels: Option<Labels>,
}

/// A parsed `dataset.json` (nnunetv2 format; v1's `modality` is read as `channel_names`).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetJson {
    /// `channel_names` by channel index, e.g. `{0: "CT"}`.
    pub channel_names: BTreeMap<usize, String>,
    /// `labels`, in file order.
    pub labels: Labels,
    /// `regions_class_order`, for region-based models.
    pub regions_class_order: Option<Vec<i64>>,
    /// `file_ending` (`.nii.gz` when absent).
    pub file_ending: String,
    /// `numTraining`, if present.
    pub num_training: Option<usize>,
    /// `overwrite_image_reader_writer`, if present.
    pub overwrite_image_reader_writer: Option<String>,
}

impl DatasetJson {
    /// Reads `dataset.json`. Errors name the file and the key.
    pub fn load(path: impl AsRef<Path>) -> Result<DatasetJson> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        DatasetJson::from_json_slice(&data).map_err(|e| e.in_file(path))
    }

    /// Parses the bytes of a `dataset.json`.
    pub fn from_json_slice(data: &[u8]) -> Result<DatasetJson> {
        let v: Json = serde_json::from_slice(data)?;
        let labels = serde_json::from_slice::<LabelsOnly>(data)?
            .labels
            .ok_or_else(|| Error::MissingKey {
                key: "labels".into(),
            })?;
        let j = J { v: &v, path: "" };
        let names_key = if j.opt("channel_names")?.is_some() {
            "channel_names"
        } else {
            "modality"
        };
        let mut channel_names = BTreeMap::new();
        let (cv, cp) = j.key(names_key)?;
        for (k, v) in (J { v: cv, path: &cp }).obj()? {
            let p = format!("{cp}/{k}");
            let c: usize = k.parse().map_err(|_| Error::BadValue {
                key: p.clone(),
                expected: "a channel index as key".into(),
                found: k.clone(),
            })?;
            channel_names.insert(c, J { v, path: &p }.string()?);
        }
        let ds = DatasetJson {
            channel_names,
            labels,
            regions_class_order: opt_field(j, "regions_class_order", |j| {
                j.map_arr(|e| {
                    e.v.as_i64()
                        .ok_or_else(|| super::plans::bad(e.path, "an integer", e.v))
                })
            })?,
            file_ending: opt_field(j, "file_ending", |j| j.string())?
                .unwrap_or_else(|| ".nii.gz".into()),
            num_training: opt_field(j, "numTraining", |j| j.usize())?,
            overwrite_image_reader_writer: opt_field(j, "overwrite_image_reader_writer", |j| {
                j.string()
            })?,
        };
        ds.check()?;
        Ok(ds)
    }

    fn check(&self) -> Result<()> {
        match self.labels.0.iter().find(|(k, _)| k == "background") {
            Some((_, LabelValue::Label(0))) => {}
            Some((_, v)) => {
                return Err(Error::BadValue {
                    key: "labels/background".into(),
                    expected: "0".into(),
                    found: format!("{v:?}"),
                })
            }
            None => {
                return Err(Error::MissingKey {
                    key: "labels/background".into(),
                })
            }
        }
        if self.has_regions() {
            let n = self.regions().len();
            match &self.regions_class_order {
                Some(o) if o.len() == n => {}
                other => {
                    return Err(Error::BadValue {
                        key: "regions_class_order".into(),
                        expected: format!("{n} entries, one per region"),
                        found: format!("{other:?}"),
                    })
                }
            }
        }
        Ok(())
    }

    /// Whether any label is a region of more than one label (then the network's outputs are
    /// per-region sigmoids, `LabelManager.has_regions`).
    pub fn has_regions(&self) -> bool {
        self.labels
            .0
            .iter()
            .any(|(_, v)| matches!(v, LabelValue::Region(r) if r.len() > 1))
    }

    /// The `ignore` label, if declared.
    pub fn ignore_label(&self) -> Option<i64> {
        self.labels.0.iter().find_map(|(k, v)| match v {
            LabelValue::Label(l) if k == "ignore" => Some(*l),
            _ => None,
        })
    }

    /// `LabelManager.all_labels`: every label value except `ignore`, sorted, unique.
    pub fn all_labels(&self) -> Vec<i64> {
        let mut out: Vec<i64> = self
            .labels
            .0
            .iter()
            .filter(|(k, _)| k != "ignore")
            .flat_map(|(_, v)| match v {
                LabelValue::Label(l) => vec![*l],
                LabelValue::Region(r) => r.clone(),
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `LabelManager.foreground_regions` for region-based models: the non-background entries in file
    /// order (`ignore` skipped). Empty for label-based models.
    pub fn regions(&self) -> Vec<(String, Vec<i64>)> {
        if !self.has_regions() {
            return Vec::new();
        }
        self.labels
            .0
            .iter()
            .filter(|(k, _)| k != "ignore")
            .filter_map(|(k, v)| {
                let r = match v {
                    LabelValue::Label(l) => vec![*l],
                    LabelValue::Region(r) => r.clone(),
                };
                (!r.iter().all(|&x| x == 0)).then(|| (k.clone(), r))
            })
            .collect()
    }

    /// `LabelManager.num_segmentation_heads`: the network's output channels.
    pub fn num_segmentation_heads(&self) -> usize {
        if self.has_regions() {
            self.regions().len()
        } else {
            self.all_labels().len()
        }
    }

    /// The name of label `value` (the first entry that is exactly that label), if any.
    pub fn label_name(&self, value: i64) -> Option<&str> {
        self.labels.0.iter().find_map(|(k, v)| match v {
            LabelValue::Label(l) if *l == value => Some(k.as_str()),
            _ => None,
        })
    }
}

/// Label names of a `dataset.json` of either nnU-Net, by label value: v1's `{"labels": {"1": "liver"}}`
/// and v2's `{"labels": {"liver": 1}}`. v2 regions (lists of several labels) name no single label and are
/// left out; a v2 label listed under two names keeps the first in key order. Errors name the file and
/// the key.
pub fn label_names(path: impl AsRef<Path>) -> Result<BTreeMap<i64, String>> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    label_names_from_json_slice(&data).map_err(|e| e.in_file(path))
}

/// [`label_names`] of the bytes of a `dataset.json`.
pub fn label_names_from_json_slice(data: &[u8]) -> Result<BTreeMap<i64, String>> {
    let v: Json = serde_json::from_slice(data)?;
    let labels = v
        .get("labels")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::MissingKey {
            key: "labels".into(),
        })?;
    let mut out = BTreeMap::new();
    for (k, val) in labels {
        match val {
            // v1: "1": "liver"
            Json::String(name) => {
                let label: i64 = k.parse().map_err(|_| Error::BadValue {
                    key: format!("labels/{k}"),
                    expected: "a label value as key (nnU-Net v1) or a value per name (v2)".into(),
                    found: k.clone(),
                })?;
                out.insert(label, name.clone());
            }
            _ => {
                let parsed = serde_json::from_value::<Labels>(serde_json::json!({ k: val }))
                    .map_err(|e| Error::BadValue {
                        key: format!("labels/{k}"),
                        expected: "an integer or a list of integers".into(),
                        found: e.to_string(),
                    })?;
                if let Some((name, LabelValue::Label(label))) = parsed.0.into_iter().next() {
                    out.entry(label).or_insert(name);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod label_name_tests {
    use super::*;

    #[test]
    fn names_of_v1_and_v2_labels() {
        let v1 = br#"{"labels": {"0": "background", "1": "liver", "2": "tumour"}, "modality": {"0": "CT"}}"#;
        let n = label_names_from_json_slice(v1).unwrap();
        assert_eq!(n.get(&2).map(String::as_str), Some("tumour"));
        assert_eq!(n.len(), 3);
        let v2 = br#"{"labels": {"background": 0, "liver": 1, "tumour": [2], "both": [1, 2]}}"#;
        let n = label_names_from_json_slice(v2).unwrap();
        assert_eq!(
            n.into_iter().collect::<Vec<_>>(),
            vec![
                (0, "background".into()),
                (1, "liver".into()),
                (2, "tumour".into())
            ]
        );
        let bad = br#"{"labels": {"one": "liver"}}"#;
        let e = label_names_from_json_slice(bad).unwrap_err().to_string();
        assert!(e.contains("labels/one"), "{e}");
        assert!(label_names_from_json_slice(br#"{"name": "x"}"#).is_err());
    }
}
