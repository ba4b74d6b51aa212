"""reisoseg import-stock: a stock checkpoint plus a fresh isotropic branch, loadable by nnU-Net's
-pretrained_weights; and its errors."""
import pytest
import torch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.method.network import build_reiso_network
from nnunetv2_reisoseg.training.export import import_stock
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from tests.fixtures import load_plans
from tests.training.test_trainer import DATASET_JSON


def _stock_checkpoint(path, plans="tiny_40x10x10"):
    p = load_plans(plans)
    pm = PlansManager(p)
    torch.manual_seed(1)
    net = nnUNetTrainer.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 1, 2, True)
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer", "current_epoch": 7,
                "init_args": {"plans": p, "configuration": "3d_fullres", "fold": 0, "dataset_json": DATASET_JSON}},
               path)
    return net.state_dict()


def test_imported_checkpoint_loads_with_nnunet_pretrained_weights(tmp_path):
    stock = _stock_checkpoint(tmp_path / "stock.pth")
    pm = PlansManager(load_plans("tiny_40x10x10"))
    torch.manual_seed(5)
    target = build_reiso_network(pm, pm.get_configuration("3d_fullres"), 1, 2, True)
    # nnU-Net's loader refuses the stock checkpoint itself: the isotropic branch is missing
    with pytest.raises(AssertionError, match=r"isotropic\.pi_module"):
        load_pretrained_weights(target, str(tmp_path / "stock.pth"))
    info = import_stock(tmp_path / "stock.pth", tmp_path / "init.pth")
    assert info["new_parameters"] == sum(p.numel() for p in target.isotropic.parameters())
    load_pretrained_weights(target, str(tmp_path / "init.pth"))
    loaded = target.state_dict()
    for k, v in stock.items():
        if ".seg_layers." not in k:  # nnU-Net never transfers output heads
            assert torch.equal(loaded[k], v), k
    saved = torch.load(tmp_path / "init.pth", weights_only=False)
    assert saved["trainer_name"] == "nnUNetTrainerReIso" and saved["imported_from"]["current_epoch"] == 7
    pi = {k: v for k, v in loaded.items() if k.startswith("isotropic.pi_module.")}
    assert pi and all(torch.equal(v, saved["network_weights"][k]) for k, v in pi.items())
    # the seed makes the fresh branch reproducible
    import_stock(tmp_path / "stock.pth", tmp_path / "again.pth")
    again = torch.load(tmp_path / "again.pth", weights_only=False)["network_weights"]
    assert all(torch.equal(again[k], v) for k, v in saved["network_weights"].items())


def test_import_stock_errors(tmp_path, capsys):
    _stock_checkpoint(tmp_path / "stock.pth")
    assert main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "init.pth")]) == 0
    assert "-pretrained_weights" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"exists.*--overwrite"):
        main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "init.pth")])
    with pytest.raises(SystemExit, match="already holds an isotropic branch"):
        main(["import-stock", str(tmp_path / "init.pth"), "-o", str(tmp_path / "x.pth")])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["import-stock", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "x.pth")])
    with pytest.raises(ValueError, match="does not hold the network nnUNetTrainerReIsoSegNet builds"):
        import_stock(tmp_path / "stock.pth", tmp_path / "x.pth", nnUNetTrainerReIsoSegNet)
    assert not (tmp_path / "x.pth").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.pth", "stock.pth"]  # nothing half-written


def _reiso_model(folder):
    from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso
    from tests.volume.test_predict_volume import make_model

    return make_model(folder, nnUNetTrainerReIso, folds=(0,))


def test_export_stock_never_deletes_the_models_it_reads_or_a_foreign_folder(tmp_path):
    """Issue 28: export-stock -o DATASET_RESULTS_FOLDER --overwrite deleted every trained model of the dataset."""
    results = tmp_path / "Dataset001_X"
    model = _reiso_model(results / "nnUNetTrainerReIso__nnUNetPlans__3d_fullres")
    other = results / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    other.mkdir()
    (other / "keep.pth").write_bytes(b"weeks of training")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit, match=r"which holds .*nnUNetTrainerReIso__nnUNetPlans__3d_fullres"):
        main(["export-stock", str(model), "-o", str(results), "--overwrite"])
    with pytest.raises(SystemExit, match="not written by reisoseg"):
        main(["export-stock", str(model), "-o", str(other), "--overwrite"])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # its own export is replaced, and only once the new one is complete
    assert main(["export-stock", str(model), "-o", str(tmp_path / "stock")]) == 0
    assert main(["export-stock", str(model), "-o", str(tmp_path / "stock"), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset001_X", "stock"]
    saved = torch.load(tmp_path / "stock" / "fold_0" / "checkpoint_final.pth", weights_only=False)
    assert saved["trainer_name"] == "nnUNetTrainer"


def test_garbage_checkpoints_are_clear_errors(tmp_path):
    model = _reiso_model(tmp_path / "model")
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(SystemExit, match=r"checkpoint_final.pth is not a readable PyTorch checkpoint"):
        main(["export-stock", str(model), "-o", str(tmp_path / "stock")])
    assert not (tmp_path / "stock").exists()
    with pytest.raises(SystemExit, match=r"not a readable PyTorch checkpoint"):
        main(["import-stock", str(model / "fold_0" / "checkpoint_final.pth"), "-o", str(tmp_path / "init.pth")])
    torch.save({"something": "else"}, tmp_path / "other.pth")
    with pytest.raises(SystemExit, match="not an nnU-Net checkpoint"):
        main(["import-stock", str(tmp_path / "other.pth"), "-o", str(tmp_path / "init.pth")])
    assert not (tmp_path / "init.pth").exists()


def test_import_stock_overwrites_only_its_own_checkpoints(tmp_path):
    _stock_checkpoint(tmp_path / "stock.pth")
    (tmp_path / "notes.pth").write_bytes(b"not ours")
    with pytest.raises(SystemExit, match="not one: it is not a checkpoint"):
        main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "notes.pth"), "--overwrite"])
    with pytest.raises(SystemExit, match=r"which holds .*stock.pth"):  # the source itself
        main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "stock.pth"), "--overwrite"])
    assert main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "init.pth")]) == 0
    assert main(["import-stock", str(tmp_path / "stock.pth"), "-o", str(tmp_path / "init.pth"), "--overwrite"]) == 0
    assert (tmp_path / "notes.pth").read_bytes() == b"not ours"
