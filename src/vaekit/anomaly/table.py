"""A table (DataFrame or array) as the float32 matrix an anomaly detector's network sees.

:class:`TablePreprocessor` is fitted once on the training table and then applied to every table
scored later. It matches DataFrame columns by name, one-hot encodes the categorical columns with
the training categories, optionally fills missing values with the training medians, and scales the
numeric columns. Everything it learns is plain numbers and strings: :meth:`to_json` /
:meth:`from_json` save and restore it exactly, without pickle.

ID-like columns of a DataFrame (see :func:`id_like_columns`: a row number, a transaction id)
are left out of the features at fit time, with a one-line :class:`IdColumnWarning`, unless named
in ``keep_columns``; the columns left out are saved (``dropped_columns_``) and scoring ignores them.

Scaling is computed in float64 and only the scaled values are cast to float32, so a column of
``1e6 + noise of 1e-3`` keeps its noise. Scaled values are then clipped to ``+-CLIP`` before the
network sees them: a row with a finite but absurd value (3.4e38, 1e20, or 1e39, beyond float32
when scoring) is still scored, high, instead of overflowing the network into NaN.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from .options import SCALINGS  # declared with the detectors' options

# 'robust' scaling compresses values beyond this many scale units logarithmically (see
# compress_tails); 3 is where a normal column's tail ends (0.3% of its rows lie beyond).
KNEE = 3.0
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Every scaled value is clipped to +-CLIP before the network. With 'standard' scaling no training
# value of a table under 10^8 rows lies beyond it (a z-score is at most sqrt(n - 1)), and 'robust'
# compresses tails logarithmically (1e308 becomes 713 units), so the clip only ever touches values
# far outside the training data; it keeps the network's arithmetic (squares of 1e4 times its weights) well inside
# float32, so such rows get finite, high scores. With scaling='none' it is 1e4 in the data's units.
CLIP = 1e4


class NotNumericError(DataError, TypeError):
    """A feature cell that is not a number (a TypeError too, as scikit-learn expects)."""


class IdColumnWarning(UserWarning):
    """ID-like columns were left out of a detector's features."""


# Fewer rows than this and "every value distinct" says little about a column.
ID_MIN_ROWS = 20
_ID_NAME_CAMEL = re.compile(r"[a-z0-9](Id|ID)$")


def _looks_like_id_name(name: str) -> bool:
    return bool(re.search(r"(^|[_\-\s.])(id|uuid|guid|key|index)$", name, re.IGNORECASE)
                or re.search(r"^(id|uuid|guid)([_\-\s.]|$)", name, re.IGNORECASE) or _ID_NAME_CAMEL.search(name))


def id_like_columns(frame, exclude=()) -> dict[str, str]:
    """ID-like columns of a DataFrame: ``{name: why}``, in column order.

    The rule: the table has at least :data:`ID_MIN_ROWS` rows, the column has no missing value
    and a different value in every row, and

    - it holds text (a transaction code, a UUID), or
    - it holds integers that rise (or fall) in every row (a row number, a sequential id), or
    - it holds integers and its name reads as an identifier (``id``, ``tx_id``, ``customerId``,
      ``uuid``, ``key``, ``index``).

    A column of unique integers with any other name (an amount in cents) is kept: it may be a real
    feature. Floats and booleans are never ID-like. Columns named in ``exclude`` are not checked.
    """
    import pandas as pd

    out: dict[str, str] = {}
    if len(frame) < ID_MIN_ROWS:
        return out
    skip = {str(c) for c in exclude}
    for name in frame.columns:
        if str(name) in skip:
            continue
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or col.isna().any():
            continue
        if pd.api.types.is_integer_dtype(col):
            kind = "integers"
        elif pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            if not all(isinstance(v, str) for v in col.iloc[:1000]):
                continue
            kind = "text"
        else:
            continue
        if not col.is_unique:
            continue
        if kind == "text":
            out[str(name)] = "a different text in every row"
        elif col.is_monotonic_increasing or col.is_monotonic_decreasing:
            out[str(name)] = "a different integer in every row, in order"
        elif _looks_like_id_name(str(name)):
            out[str(name)] = "a different integer in every row, and an identifier's name"
    return out


class _Columns:
    """Which columns of a table are features, numeric or categorical (a TablePreprocessor's part)."""

    def _split(self, X, fitting: bool):
        """(numeric block, categorical block or None, numeric column names or positions)."""
        import pandas as pd

        cats = list(self.categorical or [])
        if isinstance(X, pd.DataFrame):
            return self._split_frame(X, cats, fitting)
        if hasattr(X, "toarray") or hasattr(X, "tocsr"):
            raise NotNumericError("sparse input is not supported; pass a dense array (X.toarray()) or a DataFrame")
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataError(
                f"X must be a table of shape (n_rows, n_features), got shape {arr.shape}."
                " Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row"
            )
        if len(arr) == 0:
            raise DataError(f"X is empty (0 rows); pass at least one row to {'fit' if fitting else 'score'}")
        if fitting:
            self.feature_names_ = None
        elif self.feature_names_ is not None and cats:
            raise DataError("this detector was fitted on a DataFrame with categorical columns; pass a DataFrame with the same column names")
        if cats:
            bad = [c for c in cats if not (isinstance(c, (int, np.integer)) and 0 <= c < arr.shape[1])]
            if bad:
                raise ConfigError(
                    f"with an array, categorical= takes column positions 0..{arr.shape[1] - 1}, got {bad}"
                    f"; or pass a pandas DataFrame and column names"
                )
        if not fitting and arr.shape[1] != self.n_features_in:
            return arr, (arr[:, :0] if cats else None), list(range(arr.shape[1]))  # transform() reports the count
        # Array columns are positions, also for a detector fitted on a DataFrame (as scikit-learn does).
        numeric = [i for i in range(arr.shape[1]) if i not in cats]
        return arr[:, numeric], (arr[:, cats] if cats else None), numeric

    def _split_frame(self, X, cats: list, fitting: bool):
        import pandas as pd

        names = [str(c) for c in X.columns]
        X = X.set_axis(names, axis=1)
        if len(X) == 0:
            raise DataError(f"X is empty (0 rows); pass at least one row to {'fit' if fitting else 'score'}")
        if fitting:
            self._check_categorical(cats, names)
            self.dropped_columns_ = self._id_columns_of(X, names, cats)
            if self.dropped_columns_:
                X = X.drop(columns=[c for c in self.dropped_columns_ if c in names])
                names = [str(c) for c in X.columns]
            self.feature_names_ = names
        elif self.feature_names_ is not None:
            missing = [c for c in self.feature_names_ if c not in names]
            if missing:
                raise DataError(f"columns {missing[:5]} seen in training are missing; pass the same columns as the training data")
            X = X[self.feature_names_]  # match by name, so column order in a new file does not matter
            names = list(self.feature_names_)
        self._check_categorical(cats, names)
        numeric = [c for c in names if c not in cats]
        block = X[numeric]
        fast = all(pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in block.dtypes)
        num = block.to_numpy(dtype=np.float64 if fast else object) if numeric else np.empty((len(X), 0))
        return num, (X[cats].to_numpy(dtype=object) if cats else None), numeric

    @staticmethod
    def _check_categorical(cats: list, names: list[str]) -> None:
        unknown = [c for c in cats if c not in names]
        if unknown:
            from ..data.tables import column_hint

            raise ConfigError(f"categorical column {unknown[0]!r} is not in the data{column_hint(unknown[0], names)}")

    def _id_columns_of(self, X, names: list[str], cats: list) -> list[str]:
        """The columns to leave out of a DataFrame at fit time (see the class docstring)."""
        from ..data.tables import column_hint

        keep = [str(c) for c in self.keep_columns or []]
        for c in keep:
            if c not in names:
                raise ConfigError(f"keep_columns names {c!r}, which is not in the data{column_hint(c, names)}")
        if self.id_columns is None:
            return []
        if self.id_columns != "auto":
            if isinstance(self.id_columns, str):
                raise ConfigError(f"id_columns takes 'auto', a list of column names or None, got {self.id_columns!r}")
            return [str(c) for c in self.id_columns if str(c) not in keep]
        found = id_like_columns(X, exclude=[*keep, *map(str, cats)])
        if found:
            what = "; ".join(f"{c!r} ({why})" for c, why in found.items())
            warnings.warn(f"left out ID-like column(s) {what}; pass keep_columns=[...] to use them as features",
                          IdColumnWarning, stacklevel=6)
        return list(found)


class _Cells:
    """The cells of the numeric and categorical blocks: numbers, missing values, one-hot codes (a TablePreprocessor's part)."""

    @staticmethod
    def _to_float64(num: np.ndarray) -> np.ndarray:
        if num.dtype.kind in "biuf":
            return num.astype(np.float64)
        if num.dtype.kind == "c":
            raise DataError("Complex data not supported: pass real-valued features (e.g. the real and imaginary parts as two columns)")
        try:
            return num.astype(np.float64)
        except (TypeError, ValueError) as e:
            for i, v in enumerate(num.reshape(-1)):
                try:
                    float(v)
                except (TypeError, ValueError):
                    r, c = divmod(i, num.shape[1])
                    raise NotNumericError(
                        f"non-numeric value {v!r} at row {r}, feature {c} ({e}); pass numbers, or name the column in categorical="
                    ) from None
            raise NotNumericError(f"features must be numeric ({e})") from None

    def _check_finite(self, num: np.ndarray, numeric: list, fitting: bool) -> np.ndarray:
        """NaN and +-inf filled (impute=True) or refused; values beyond float32's range refused in
        training data (almost surely a data error) and clipped when scoring (see CLIP)."""
        bad = ~np.isfinite(num)
        if self.impute:
            if fitting:
                with np.errstate(all="ignore"):
                    med = np.nanmedian(np.where(bad, np.nan, num), axis=0) if num.shape[1] else np.zeros(0)
                self.impute_values_ = np.where(np.isfinite(med), med, 0.0).tolist()
            if bad.any():
                num = np.where(bad, np.asarray(self.impute_values_)[None, :], num)
        elif bad.any():
            r, c = np.argwhere(bad)[0]
            fix = ("pass impute=True (--impute) to fill them with the training medians" if fitting else
                   "refit the detector with impute=True (`vaekit detect fit --impute`) to fill them with the training medians")
            raise DataError(f"X has {int(bad.sum())} NaN or infinite values (first at row {r}, column {numeric[c]!r}: {num[r, c]}); "
                            f"clean the data or {fix}")
        huge = np.abs(num) > _FLOAT32_MAX
        if fitting and huge.any():
            r, c = np.argwhere(huge)[0]
            raise DataError(
                f"X has {int(huge.sum())} values too large for float32 (|x| > {_FLOAT32_MAX:.3g}; first {num[r, c]:g} at row {r}, "
                f"column {numeric[c]!r}); such a value is almost certainly a data error: fix it, or rescale the column"
            )
        return num

    def _one_hot(self, values: np.ndarray, col) -> np.ndarray:
        import pandas as pd

        missing = pd.isna(values)
        if missing.any() and not self.impute:
            raise DataError(
                f"categorical column {col!r} has {int(missing.sum())} missing values (first at row {int(np.argmax(missing))}); "
                "fill them, or fit with impute=True (`vaekit detect fit --impute`; missing categories are then encoded as all-zero)"
            )
        levels = self.categories_[str(col)]
        index = {k: i for i, k in enumerate(levels)}
        onehot = np.zeros((len(values), len(levels)), dtype=np.float32)
        pos = np.fromiter((-1 if m else index.get(str(v), -1) for v, m in zip(values, missing)), dtype=np.int64, count=len(values))
        hit = pos >= 0  # unseen or missing categories stay all-zero rather than failing in production
        onehot[np.nonzero(hit)[0], pos[hit]] = 1.0
        return onehot


@dataclass
class TablePreprocessor(_Columns, _Cells):
    """Columns -> float32 matrix: one-hot categories, optional imputation, per-column scaling.

    ``scaling``: ``'robust'`` (median and the larger of std and IQR / 1.349, see
    :func:`robust_scale`, then :func:`compress_tails`),
    ``'standard'`` (mean and standard deviation) or ``'none'``. One-hot columns are never scaled:
    they are 0/1 already, and scaling would turn a rare category into a huge value.

    ``id_columns``: ``'auto'`` leaves out the ID-like columns of a DataFrame (:func:`id_like_columns`;
    an array's columns are never left out), a list leaves out exactly those columns (where present),
    None leaves out nothing. ``keep_columns`` are never left out as ID-like.
    Learned state (after :meth:`fit`) ends in ``_``; ``dropped_columns_`` are the columns left out.
    """

    categorical: list | None = None
    impute: bool = False
    scaling: str = "robust"
    id_columns: str | list | None = "auto"
    keep_columns: list | None = None
    dropped_columns_: list[str] = field(default_factory=list)
    feature_names_: list[str] | None = None
    numeric_columns_: list = field(default_factory=list)
    categories_: dict[str, list[str]] = field(default_factory=dict)
    impute_values_: list[float] | None = None
    center_: list[float] | None = None
    scale_: list[float] | None = None

    # -- fitting and applying ----------------------------------------------------------------------
    def fit_transform(self, X) -> np.ndarray:
        """Learn the columns, categories, medians and scales from X; return X transformed (float32)."""
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose one of {', '.join(SCALINGS)}")
        num, cat, numeric = self._split(X, fitting=True)
        self.numeric_columns_ = list(numeric)
        if num.shape[1] + (0 if cat is None else cat.shape[1]) == 0:
            raise DataError(f"X has 0 feature(s) (shape=({len(num)}, 0)) while a minimum of 1 is required; pass at least one feature column")
        num = self._check_finite(self._to_float64(num), numeric, fitting=True)
        center, scale = _scaling(num, self.scaling)
        self.center_, self.scale_ = center.tolist(), scale.tolist()
        if self.scaling != "robust":  # robust scaling compresses tails below the clip
            _warn_if_clipped(num, center, scale, numeric)
        if cat is not None:
            self.categories_ = {str(c): sorted({str(v) for v in cat[:, j] if not _missing(v)}) for j, c in enumerate(self.categorical)}
        return self._assemble(num, cat)

    def transform(self, X, who: str = "the detector") -> np.ndarray:
        """X as the float32 matrix of the fitted columns (same order and scaling as at fit time).

        ``who`` names the model in the message for a wrong number of features.
        """
        num, cat, numeric = self._split(X, fitting=False)
        n_in = num.shape[1] + (0 if cat is None else cat.shape[1])
        if n_in != self.n_features_in:
            raise DataError(
                f"X has {n_in} features, but {who} is expecting {self.n_features_in} features as input; "
                "pass the same columns as the training data"
            )
        return self._assemble(self._check_finite(self._to_float64(num), numeric, fitting=False), cat)

    @property
    def n_features_in(self) -> int:
        """Number of input columns (before one-hot encoding)."""
        return len(self.numeric_columns_) + len(self.categorical or [])

    @property
    def n_outputs(self) -> int:
        """Number of columns of the transformed matrix."""
        return len(self.numeric_columns_) + sum(len(v) for v in self.categories_.values())

    def groups(self) -> list[tuple[str, list[int]]]:
        """(input feature name, its columns in the transformed matrix), numeric columns first.

        A categorical feature owns all of its one-hot columns, so per-column quantities summed
        over a group give that feature's share (used by the detectors' ``explain``).
        """
        out = [(str(c), [i]) for i, c in enumerate(self.numeric_columns_)]
        at = len(out)
        for c in self.categorical or []:
            k = len(self.categories_[str(c)])
            out.append((str(c), list(range(at, at + k))))
            at += k
        return out

    def _assemble(self, num: np.ndarray, cat) -> np.ndarray:
        if self.center_ is not None and num.shape[1]:
            with np.errstate(over="ignore"):  # (1e308 - centre) / 0.5 is inf: the clip below bounds it
                num = (num - np.asarray(self.center_)) / np.asarray(self.scale_)
            if self.scaling == "robust":
                num = compress_tails(num)
            num = np.clip(num, -CLIP, CLIP)
        blocks = [num.astype(np.float32)]
        for j, col in enumerate(self.categorical or []):
            blocks.append(self._one_hot(cat[:, j], col))
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]

    # -- JSON ------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Everything needed to rebuild this fitted preprocessor: JSON types only, floats exact."""
        return {
            "categorical": None if self.categorical is None else list(self.categorical), "impute": bool(self.impute),
            "scaling": self.scaling, "dropped_columns": list(self.dropped_columns_),
            "feature_names": self.feature_names_, "numeric_columns": list(self.numeric_columns_),
            "categories": dict(self.categories_), "impute_values": self.impute_values_,
            "center": self.center_, "scale": self.scale_,
        }

    @classmethod
    def from_json(cls, d: dict) -> TablePreprocessor:
        """The preprocessor :meth:`to_json` described; TypeError/ValueError/KeyError when it does not fit."""
        p = cls(categorical=d["categorical"], impute=bool(d["impute"]), scaling=str(d["scaling"]))
        if p.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {p.scaling!r}")
        p.feature_names_ = None if d["feature_names"] is None else [str(n) for n in d["feature_names"]]
        p.dropped_columns_ = [str(n) for n in d.get("dropped_columns") or []]  # absent in folders saved before it existed
        p.numeric_columns_ = list(d["numeric_columns"])
        cats = d["categories"] or {}
        if not isinstance(cats, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in cats.values()):
            raise TypeError("categories must map column names to lists of strings")
        p.categories_ = {str(k): v for k, v in cats.items()}
        if sorted(p.categories_) != sorted(str(c) for c in p.categorical or []):
            raise ValueError("categories do not match the categorical columns")
        n = len(p.numeric_columns_)
        for name in ("impute_values", "center", "scale"):
            v = d.get(name)
            if v is not None and (len(v) != n or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)):
                raise ValueError(f"{name} must be {n} finite numbers")
            setattr(p, name + "_", None if v is None else [float(x) for x in v])
        if p.impute and p.impute_values_ is None:
            raise ValueError("impute is set but impute_values is missing")
        if p.scale_ is not None and min(p.scale_, default=1.0) <= 0:
            raise ValueError("scales must be positive")
        return p


def _missing(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def _warn_if_clipped(num: np.ndarray, center: np.ndarray, scale: np.ndarray, numeric: list) -> None:
    """Warn when training values reach the clip ('none' on large raw units, or a 'standard' column
    whose tail lies beyond any z-score a normal table has)."""
    if not num.shape[1]:
        return
    with np.errstate(over="ignore"):
        far = (np.abs((num - center) / scale) > CLIP).any(0)
    if far.any():
        import warnings

        cols = [numeric[j] for j in np.flatnonzero(far)[:5]]
        warnings.warn(f"training values of columns {cols} lie beyond the +-{CLIP:g} scaled units every value is clipped to, "
                      "so the detector cannot tell them apart; use scaling='robust' (or rescale those columns)", stacklevel=3)


def _scaling(num: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "none" or num.shape[1] == 0:
        return np.zeros(num.shape[1]), np.ones(num.shape[1])
    if how == "standard":
        std = num.std(0)
        return num.mean(0), np.where(std > 0, std, 1.0)
    return robust_scale(num)


def robust_scale(num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: (median, scale) with scale = max(std, IQR / 1.349), in the column's units.

    The median is not moved by the outliers a detector looks for; IQR / 1.349 is the standard
    deviation of a normal column. Taking the larger of the two means no column is ever stretched
    beyond plain standardization (a column with IQR 0 would otherwise be blown up), while a
    heavy-tailed column (std inflated by its tail) is not squeezed below its central spread.
    A constant column gets scale 1.
    """
    med = np.median(num, axis=0)
    q75, q25 = np.percentile(num, [75, 25], axis=0)
    scale = np.maximum(num.std(0), (q75 - q25) / 1.349)
    return med, np.where(scale > 0, scale, 1.0)


def compress_tails(z: np.ndarray, knee: float = KNEE) -> np.ndarray:
    """Identity within +-knee, then logarithmic: ``sign(z) (knee + log(1 + |z| - knee))``.

    Monotone, so every column keeps its order, but a value 50 scale units out (a rare non-zero
    in an almost-always-zero column) becomes 6.9: one column can no longer carry a row's whole
    score, and no value can overflow float32.
    """
    a = np.abs(z)
    with np.errstate(invalid="ignore"):
        return np.where(a > knee, np.sign(z) * (knee + np.log1p(np.maximum(a - knee, 0.0))), z)
