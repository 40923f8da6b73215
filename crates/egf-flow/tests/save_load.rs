//! Models survive a save/load round trip bit for bit; bad files give clear errors.

mod common;

use candle_core::DType;
use common::{host, small_flow};
use egf_diffeo::FamilySpec;
use egf_flow::{load_flow_model, load_model, load_policy_model, EgfModel, PolicyModel, PolicyModelConfig, SavedModel};
use egf_manifold::{test_device, Manifold};
use rand::SeedableRng;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("egf-flow-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn flow_model_round_trip_is_bit_for_bit() {
    let model = small_flow(Manifold::sphere(2).unwrap(), FamilySpec::sphere_axis_rotations(0.785), 5);
    let device = test_device();
    let dir = temp_dir("flow");
    model.save(&dir).unwrap();
    let loaded = load_flow_model(&dir, &device).unwrap();
    assert_eq!(loaded.config(), model.config());
    for ((na, a), (nb, b)) in model.network_vars().iter().zip(loaded.network_vars()) {
        assert_eq!(na, &nb);
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f64>().unwrap(), b.flatten_all().unwrap().to_vec1::<f64>().unwrap());
        assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x = Manifold::sphere(2).unwrap().sample_uniform(10, &mut rng, DType::F64, &device).unwrap();
    assert_eq!(host(&model.evaluate(&x).unwrap().t), host(&loaded.evaluate(&x).unwrap().t));
    assert!(load_policy_model(&dir, &device).unwrap_err().to_string().contains("flow model"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_model_round_trip_and_f32() {
    let config = PolicyModelConfig::new(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z_irrational());
    let device = test_device();
    let model = PolicyModel::new(config, DType::F32, &device).unwrap();
    let dir = temp_dir("policy");
    model.save(&dir).unwrap();
    match load_model(&dir, &device).unwrap() {
        SavedModel::Policy(m) => {
            assert_eq!(m.dtype(), DType::F32);
            assert_eq!(m.parameter_count(), model.parameter_count());
        }
        SavedModel::Flow(_) => panic!("wrong kind"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mismatched_or_corrupt_files_are_clear_errors() {
    let model = small_flow(Manifold::torus(2).unwrap(), FamilySpec::torus_sl2z(), 1);
    let device = test_device();
    let dir = temp_dir("bad");
    model.save(&dir).unwrap();
    let json_path = dir.join("model.json");
    let json = std::fs::read_to_string(&json_path).unwrap();
    // a wider network than the weights
    std::fs::write(&json_path, json.replace("\"width\": 16", "\"width\": 17")).unwrap();
    let err = load_flow_model(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("shape") && err.contains("net.l0"), "{err}");
    // an unknown family preset
    std::fs::write(&json_path, json.replace("\"torus_sl2z\"", "\"torus_twist\"")).unwrap();
    let err = load_flow_model(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("torus_twist"), "{err}");
    // a NaN among the weights, as a run that diverged would save it
    std::fs::write(&json_path, &json).unwrap();
    let weights_path = dir.join("weights.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights_path, &candle_core::Device::Cpu).unwrap();
    let name = tensors.keys().find(|k| k.starts_with("net.")).unwrap().clone();
    let t = &tensors[&name];
    let mut values = t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    let middle = values.len() / 2;
    values[middle] = f64::NAN;
    let poisoned = candle_core::Tensor::from_vec(values, t.dims(), &candle_core::Device::Cpu)
        .unwrap()
        .to_dtype(t.dtype())
        .unwrap();
    tensors.insert(name.clone(), poisoned);
    candle_core::safetensors::save(&tensors, &weights_path).unwrap();
    let err = load_flow_model(&dir, &device).unwrap_err().to_string();
    assert!(err.contains(&format!("`{name}`")) && err.contains("1 non-finite"), "{err}");
    // truncated weights
    std::fs::write(dir.join("weights.safetensors"), b"not a safetensors file").unwrap();
    let err = load_flow_model(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("weights.safetensors"), "{err}");
    // missing directory
    let err = load_flow_model(&dir.join("nope"), &device).unwrap_err().to_string();
    assert!(err.contains("model.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
