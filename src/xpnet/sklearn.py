"""A scikit-learn classifier around an xpnet CNN: ``Pipeline``, ``GridSearchCV`` and
``cross_val_score`` take it like any other estimator.

Examples
--------
>>> from sklearn.datasets import load_digits
>>> from xpnet.sklearn import CNNClassifier
>>> X, y = load_digits(return_X_y=True)  # 8x8 images as 64 features
>>> clf = CNNClassifier(random_state=0).fit(X[:500] / 16, y[:500])
>>> clf.image_shape_, clf.model_name_, clf.epochs_, clf.augment_
((1, 8, 8), 'small_cnn', 200, 1)
>>> bool(clf.score(X[500:1000] / 16, y[500:1000]) > 0.9)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import models, optim
from ._backend import asarray, backend_of, backend_status, is_array, to_numpy
from .augment import RandomShift
from .inference import probabilities
from .nn import CrossEntropyLoss, Module, from_spec
from .train import fit


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """The scikit-learn estimator checks that cannot pass, each with the reason.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    None today: all 55 checks scikit-learn 1.9 runs on this estimator pass (with pandas
    installed; ``check_sample_weight_*`` are not run, as ``fit`` takes no
    ``sample_weight``).

    Parameters
    ----------
    estimator : CNNClassifier
        The estimator being checked.

    Returns
    -------
    dict of str to str
        Check name -> reason (empty).
    """
    return {}


AUTO_STEPS = 800
"""``epochs="auto"`` trains for at least this many optimizer steps (and 2 epochs)."""
AUTO_MAX_EPOCHS = 500
"""... and at most this many epochs (a dataset smaller than ``AUTO_STEPS / 500`` batches)."""


def auto_epochs(n_samples: int, batch_size: int) -> int:
    """The epochs ``epochs="auto"`` trains: at least 2 and enough for :data:`AUTO_STEPS`
    steps of ``batch_size``, at most :data:`AUTO_MAX_EPOCHS`.

    Parameters
    ----------
    n_samples : int
        Training samples.
    batch_size : int
        Samples per step.

    Returns
    -------
    int
        Epochs.

    Examples
    --------
    >>> auto_epochs(55_000, 128)  # MNIST: 430 steps an epoch, as ``xpnet train``
    2
    >>> auto_epochs(1_198, 128)  # two thirds of scikit-learn's digits: 10 steps an epoch
    80
    """
    steps_per_epoch = -(-n_samples // batch_size)
    return min(max(2, -(-AUTO_STEPS // steps_per_epoch)), AUTO_MAX_EPOCHS)


def _array_api_dispatch() -> bool:
    from sklearn import get_config

    return bool(get_config().get("array_api_dispatch", False))


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """A convolutional-network classifier trained with xpnet on any array-API backend.

    Parameters
    ----------
    model : str, dict or callable, default="mnist_cnn"
        A name from :data:`xpnet.models.MODELS`; a spec (``Module.spec()``); or a callable
        ``model(image_shape=, n_classes=, seed=, backend=)`` returning a :class:`Module`
        whose output is ``(n, n_classes)`` logits. A named net that does not fit the
        images (``mnist_cnn`` needs at least 16x16, ``lenet5`` 12x12, ``seed_cnn`` 6x6, and
        square images) is replaced by :func:`xpnet.models.small_cnn`, which fits any
        size down to 1x1; ``model_name_`` says which net was built.
    image_shape : tuple of int, optional
        ``(channels, height, width)`` or ``(height, width)`` of the images in flat input
        ``(n, n_features)``. By default 4-D input gives it, and flat input is taken as
        square one-channel images when ``n_features`` is a square number, else as
        ``1 x n_features`` strips.
    epochs : int or "auto", default="auto"
        Passes over the training data. ``"auto"`` trains for at least 800 optimizer steps
        and at least 2 epochs (at most 500): 2 epochs of MNIST's 55,000 images at batch
        128 (860 steps, what ``xpnet train`` does), 80 epochs of 1,200 digits (10 steps
        an epoch). With Adam's one-cycle schedule, 800 steps is what small data needs to
        converge (a fixed 2 epochs are 20 steps there, and underfit); see
        :func:`auto_epochs`. ``epochs_`` says what a fit took.
    batch_size : int, default=128
    optimizer : {"adam", "sgd"}, default="adam"
        Adam, or SGD with Nesterov momentum 0.9; with a one-cycle schedule over ``fit``.
    lr : float, optional
        Peak learning rate; default 5e-3 for Adam and 0.05 for SGD (the CLI's).
    backend : str, optional
        Where to train: ``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``, ``"array_api_strict"``.
        Default: the backend of ``X`` as scikit-learn hands it over (NumPy unless
        ``sklearn.set_config(array_api_dispatch=True)``, when CuPy or torch input stays
        where it is).
    augment : "auto", int or None, default="auto"
        Random shifts of each training batch by up to this many pixels (on the device,
        zero-filled; :class:`xpnet.augment.RandomShift`). ``"auto"``: 1 pixel for images
        of at least 8x8 (4-D input, ``image_shape``, or flat input with a square number
        of features >= 64), none for anything smaller, which is more likely a few
        features than a picture. ``None`` or 0: no augmentation.
    dtype : {"float32", "float64"}, default="float32"
        The precision the net trains in (float32: twice the speed of float64 on CPUs,
        more on GPUs). Predictions are computed in ``X``'s precision, as scikit-learn's
        ``MLPClassifier`` does: float32 input in float32, anything else (float64,
        integers) in float64 through a float64 copy of the trained weights, so a
        sample's probabilities do not depend on its position in the batch (beyond
        float64 rounding) or on the BLAS kernels the CPU picks.
    random_state : int, optional
        Seeds the weights and the batch order; ``None`` draws a fresh seed per fit.
    verbose : int, default=0
        ``> 0``: one line per epoch.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (any type scikit-learn accepts: ints, strings, ...).
    n_features_in_ : int
        ``X.shape[1]`` at fit (features of flat input, channels of 4-D input).
    image_shape_ : (int, int, int)
        (channels, height, width) the net was built for.
    model_ : Module
        The trained net, on ``backend_``.
    model_name_ : str
        The name of the net that was built (``"custom"`` for a spec or callable).
    dtype_ : str
        ``"float32"`` or ``"float64"``: the precision the net was trained in.
    augment_ : int
        The largest random shift (pixels) the last fit applied; 0 for none.
    epochs_ : int
        The epochs the last ``fit`` trained (see ``epochs``).
    history_ : xpnet.train.History
        Per-epoch loss and accuracy of the last ``fit``/``partial_fit``.

    Notes
    -----
    A fitted estimator pickles (its arrays as NumPy) and unpickles on any machine; but, as
    scikit-learn warns of its own models, unpickling runs whatever code the pickle names:
    load only pickles you trust. To share a trained net, save its checkpoint instead
    (``xpnet.checkpoint.save_checkpoint(path, clf.model_)``): loading one runs no code and
    checks the file (see :func:`xpnet.checkpoint.load_checkpoint`).
    """

    def __init__(
        self,
        model: str | Mapping[str, Any] | Callable[..., Module] = "mnist_cnn",
        *,
        image_shape: tuple[int, ...] | None = None,
        epochs: int | str = "auto",
        batch_size: int = 128,
        optimizer: str = "adam",
        lr: float | None = None,
        backend: str | None = None,
        augment: str | int | None = "auto",
        dtype: str = "float32",
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.model = model
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.backend = backend
        self.augment = augment
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags

    # ----------------------------------------------------------------------------------
    # Input checks
    # ----------------------------------------------------------------------------------

    def _validate(self, X: Any, y: Any = None, *, reset: bool) -> tuple[Any, Any]:
        """scikit-learn's checks (NaN/inf, 1-D X, feature count, ...); arrays of another
        backend go through NumPy unless array-API dispatch is on."""
        dtypes: list[Any] = ["float32", "float64"]
        if not _array_api_dispatch():
            X = to_numpy(X) if is_array(X) else X
            y = to_numpy(y) if is_array(y) else y
        elif is_array(X):  # the namespace's own dtypes: it may not take names
            xp = _namespace(X)
            dtypes = [xp.float32, xp.float64]
        check = {"dtype": dtypes, "allow_nd": True, "reset": reset}
        if y is None and not reset:
            return validate_data(self, X, **check), None
        X, y = validate_data(self, X, y, **check)
        if X.ndim not in (2, 4):
            raise ValueError(
                f"CNNClassifier: X must be 2-D (n_samples, n_features) or 4-D (n, C, H, W); "
                f"got shape {tuple(X.shape)}"
            )
        return X, y

    def _resolve_image_shape(self, X: Any) -> tuple[int, int, int]:
        if X.ndim == 4:
            return tuple(int(s) for s in X.shape[1:])  # type: ignore[return-value]
        n_features = int(X.shape[1])
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            shape = (1, *shape) if len(shape) == 2 else shape
            if len(shape) != 3 or math.prod(shape) != n_features:
                raise ValueError(
                    f"CNNClassifier: image_shape must be (C, H, W) or (H, W) with "
                    f"{n_features} pixels in all (n_features); got {self.image_shape!r}"
                )
            return shape
        side = math.isqrt(n_features)
        return (1, side, side) if side * side == n_features else (1, 1, n_features)

    def _images(self, X: Any, dtype: str) -> Any:
        """X as (n, C, H, W) in ``dtype``, on the net's backend and device."""
        if X.ndim == 2:
            X = _namespace(X).reshape(X, (X.shape[0], *self.image_shape_))
        device = _device_of(self.model_.parameters()[0].data)  # the net's device
        return asarray(X, backend=self.backend_, dtype=dtype, device=device)

    def _resolve_dtype(self) -> str:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"CNNClassifier: dtype must be 'float32' or 'float64'; got {self.dtype!r}"
            )
        return str(self.dtype)

    def _resolve_augment(self) -> int:
        if self.augment == "auto":
            _, height, width = self.image_shape_
            return 1 if min(height, width) >= 8 else 0
        if self.augment is None:
            return 0
        if isinstance(self.augment, bool) or not isinstance(self.augment, int) or self.augment < 0:
            raise ValueError(
                f"CNNClassifier: augment must be 'auto', None or an int >= 0; got {self.augment!r}"
            )
        return self.augment

    # ----------------------------------------------------------------------------------
    # Fitting
    # ----------------------------------------------------------------------------------

    def _initialise(self, X: Any, y: Any, classes: Any = None) -> None:
        """Classes, image shape, backend and a fresh net for the first fit."""
        check_classification_targets(y)
        self.classes_ = np.unique(to_numpy(y) if classes is None else np.asarray(classes))
        if len(self.classes_) < 2:
            raise ValueError(
                f"CNNClassifier: y has {len(self.classes_)} class ({self.classes_.tolist()}); "
                "a classifier needs at least 2 classes"
            )
        if self.optimizer not in optim.DEFAULT_LR:
            raise ValueError(
                f"CNNClassifier: optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}"
            )
        self.image_shape_ = self._resolve_image_shape(X)
        self.dtype_ = self._resolve_dtype()
        self.augment_ = self._resolve_augment()
        self.backend_ = self.backend or backend_of(X)
        usable, reason = backend_status(self.backend_)
        if not usable:
            raise ValueError(f"CNNClassifier: backend {self.backend_!r} is not usable: {reason}")
        seed = self.random_state
        self.seed_ = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        self.model_, self.model_name_ = self._build(len(self.classes_))
        self.model_.to(
            self.backend_,
            device=_device_of(X) if backend_of(X) == self.backend_ else None,
            dtype=self.dtype_,
        )
        self.lr_ = optim.DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)
        self.optimizer_ = self._make_optimizer()
        self.epochs_done_ = 0

    def _make_optimizer(self) -> optim.Optimizer:
        return optim.make_optimizer(self.optimizer, self.model_.parameters(), self.lr_)

    def _build(self, n_classes: int) -> tuple[Module, str]:
        kwargs: dict[str, Any] = {"image_shape": self.image_shape_, "n_classes": n_classes}
        if isinstance(self.model, str):
            try:
                return models.build(self.model, seed=self.seed_, **kwargs), self.model
            except ValueError as exc:
                if self.model not in models.MODELS:
                    raise ValueError(f"CNNClassifier: {exc}") from None
                return models.build("small_cnn", seed=self.seed_, **kwargs), "small_cnn"
        if isinstance(self.model, Mapping):
            net = from_spec(self.model, backend="numpy")
        elif callable(self.model):
            net = self.model(seed=self.seed_, backend="numpy", **kwargs)
        else:
            raise TypeError(
                f"CNNClassifier: model must be a model name, a spec dict or a callable; "
                f"got {type(self.model).__name__}"
            )
        if not isinstance(net, Module):
            raise TypeError(f"CNNClassifier: model built a {type(net).__name__}, not a Module")
        return net, "custom"

    def _train(self, X: Any, y: Any, epochs: int, schedule: bool) -> None:
        images = self._images(X, self.dtype_)
        labels = np.searchsorted(self.classes_, to_numpy(y))
        steps = epochs * -(-images.shape[0] // self.batch_size)
        scheduler = optim.OneCycleLR(self.optimizer_, self.lr_, max(steps, 2)) if schedule else None
        if not schedule:
            self.optimizer_.lr = self.lr_
        self.history_ = fit(
            self.model_,
            CrossEntropyLoss(),
            self.optimizer_,
            (images, labels),
            epochs=epochs,
            batch_size=self.batch_size,
            seed=self.seed_ + self.epochs_done_,
            scheduler=scheduler,
            augment=RandomShift(self.augment_, seed=self.seed_ + self.epochs_done_)
            if self.augment_
            else None,
            progress=self.verbose > 1,
            log=print if self.verbose > 0 else None,
        )
        self.epochs_done_ += epochs

    def fit(self, X: Any, y: Any) -> CNNClassifier:
        """Train a new net for ``epochs`` epochs (one-cycle schedule) on ``(X, y)``.

        Parameters
        ----------
        X : array, shape (n_samples, n_features) or (n_samples, C, H, W)
            NumPy, CuPy, torch, JAX or array_api_strict; any real values (scale them first,
            e.g. with a ``StandardScaler`` in a ``Pipeline``).
        y : array, shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self
        """
        auto = self.epochs == "auto"
        if not auto and (
            not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1
        ):
            raise ValueError(
                f"CNNClassifier: epochs must be 'auto' or an int >= 1; got {self.epochs!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"CNNClassifier: batch_size must be an int >= 1; got {self.batch_size!r}"
            )
        X, y = self._validate(X, y, reset=True)
        self._initialise(X, y)
        n_samples = int(X.shape[0])
        self.epochs_ = auto_epochs(n_samples, self.batch_size) if auto else int(self.epochs)
        self._train(X, y, self.epochs_, schedule=True)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> CNNClassifier:
        """Train one epoch more on ``(X, y)`` at the peak learning rate (a first call
        builds the net; ``classes`` lists every label if ``y`` may not show them all).

        Parameters
        ----------
        X : array_like
            Flat (n_samples, H*W) rows of square images, or (n_samples, C, H, W).
        y : array_like
            Labels (n_samples,), of any type.
        classes : array_like, optional
            Every label, on the first call.

        Returns
        -------
        CNNClassifier
            ``self``.
        """
        first = not hasattr(self, "model_")
        X, y = self._validate(X, y, reset=first)
        if first:
            self._initialise(X, y, classes)
        unknown = np.setdiff1d(np.unique(to_numpy(y)), self.classes_)
        if unknown.size:
            raise ValueError(
                f"CNNClassifier: y holds labels {unknown.tolist()} not in classes_ "
                f"{self.classes_.tolist()}"
            )
        self._train(X, y, 1, schedule=False)
        return self

    # ----------------------------------------------------------------------------------
    # Predicting
    # ----------------------------------------------------------------------------------

    def _probabilities(self, X: Any) -> Any:
        check_is_fitted(self)
        X, _ = self._validate(X, reset=False)
        dtype = "float32" if "float32" in str(X.dtype) else "float64"  # X's precision
        return probabilities(self._model_in(dtype), self._images(X, dtype)), X

    def _model_in(self, dtype: str) -> Module:
        """The trained net, or a copy of it cast to ``dtype`` (on the same device)."""
        if dtype == self.dtype_:
            return self.model_
        device = _device_of(self.model_.parameters()[0].data)
        copy = from_spec(self.model_.spec(), backend=self.backend_)
        copy.to(self.backend_, device=device, dtype=dtype)
        copy.load_state_dict(self.model_.state_dict())
        return copy

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order.

        NumPy float64 (computed in ``X``'s precision: see ``dtype``), or with
        ``sklearn.set_config(array_api_dispatch=True)`` an array of ``X``'s type and device.

        Parameters
        ----------
        X : array_like
            Flat (n_samples, H*W) rows of square images, or (n_samples, C, H, W).

        Returns
        -------
        array, shape (n_samples, n_classes)
            The probabilities.
        """
        probs, X = self._probabilities(X)
        if _array_api_dispatch() and backend_of(X) != "numpy":
            moved = asarray(probs, backend=backend_of(X), device=_device_of(X))
            return _namespace(X).astype(moved, X.dtype)
        return to_numpy(probs).astype(np.float64)

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample (labels from ``classes_``).

        Parameters
        ----------
        X : array_like
            Flat (n_samples, H*W) rows of square images, or (n_samples, C, H, W).

        Returns
        -------
        array, shape (n_samples,)
            Labels from ``classes_``.
        """
        probs, X = self._probabilities(X)
        labels = self.classes_[to_numpy(probs).argmax(axis=1)]
        if _array_api_dispatch() and backend_of(X) != "numpy" and labels.dtype.kind in "iuf":
            return asarray(labels, backend=backend_of(X), device=_device_of(X))
        return labels

    # ----------------------------------------------------------------------------------
    # Pickling: the net as NumPy arrays and its spec, rebuilt on load
    # ----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "model_" in state:
            net = state.pop("model_")
            state.pop("optimizer_", None)
            state["_net"] = {"spec": net.spec(), "weights": net.state_dict()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        net = state.pop("_net", None)
        self.__dict__.update(state)
        if net is None:
            return
        if not backend_status(self.backend_)[0]:  # e.g. trained on a GPU, loaded without one
            self.backend_ = "numpy"
        self.model_ = from_spec(net["spec"], backend=self.backend_)
        self.model_.to(self.backend_, dtype=self.__dict__.get("dtype_", "float32"))
        self.model_.load_state_dict(net["weights"])
        self.optimizer_ = self._make_optimizer()  # a fresh one: partial_fit goes on from here


def _namespace(x: Any) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(x)


def _device_of(x: Any) -> Any:
    from array_api_compat import device

    return device(x)


__all__ = ["CNNClassifier", "auto_epochs", "expected_failed_checks"]
