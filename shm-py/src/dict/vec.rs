//! `shm.ShareableVec`: a `collections.abc.MutableSequence` over `ShareableVec<Dynamic>`.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice, PyTuple};
use shm_collections::{Dynamic, ShareableVec};

use crate::codec::{to_dynamic, to_py};
use crate::errmap::{closed_err, region_err};

/// A list in shared memory (a ``collections.abc.MutableSequence``) that processes share
/// by name: ``ShareableVec(data=None, *, name=None, create=None, track=True)``, opened and
/// created like ``ShareableDict``. Elements are any values (see ``ShareableDict``).
/// Single-element operations and ``reverse``/slice assignment are atomic; ``sort`` reads,
/// sorts in Python and writes the result back in one atomic edit.
#[pyclass(module = "shm", name = "ShareableVec", frozen, sequence)]
pub struct PyShareableVec {
    v: ShareableVec<Dynamic>,
    closed: AtomicBool,
}

impl PyShareableVec {
    fn vec(&self) -> PyResult<&ShareableVec<Dynamic>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(closed_err("ShareableVec"));
        }
        Ok(&self.v)
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<Dynamic>> {
        let v = self.vec()?;
        Ok(py.detach(|| v.iter()).map_err(region_err)?.collect())
    }

    fn as_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .snapshot(py)?
            .iter()
            .map(|d| to_py(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A Python index (negative from the end) as a position `< len`.
    fn index(&self, i: isize, len: usize) -> PyResult<usize> {
        let j = if i < 0 { i + len as isize } else { i };
        if j < 0 || j as usize >= len {
            return Err(PyIndexError::new_err(format!(
                "ShareableVec index {i} out of range for length {len}"
            )));
        }
        Ok(j as usize)
    }

    fn edit<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Vec<Dynamic>) -> R + Send,
    ) -> PyResult<R> {
        let v = self.vec()?;
        py.detach(|| v.edit(f)).map_err(region_err)
    }
}

impl PyShareableVec {
    /// Wraps a vec made in Rust (by a manager).
    pub fn from_vec(v: ShareableVec<Dynamic>) -> Self {
        PyShareableVec {
            v,
            closed: AtomicBool::new(false),
        }
    }
}

fn convert_all(items: &Bound<'_, PyAny>) -> PyResult<Vec<Dynamic>> {
    items
        .try_iter()?
        .map(|x| to_dynamic(&x?))
        .collect::<PyResult<Vec<_>>>()
}

#[pymethods]
impl PyShareableVec {
    #[new]
    #[pyo3(signature = (data=None, *, name=None, create=None, track=true))]
    fn new(
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
        create: Option<bool>,
        track: bool,
    ) -> PyResult<Self> {
        let creating = create.unwrap_or(name.is_none() || data.is_some());
        let v = if creating {
            let mut v = match name {
                None => ShareableVec::<Dynamic>::create(),
                Some(n) => ShareableVec::<Dynamic>::create_named(n),
            }
            .map_err(region_err)?;
            if !track {
                v.set_unlink_on_drop(false);
            }
            if let Some(data) = data {
                let items = convert_all(data)?;
                py.detach(|| v.extend(items)).map_err(region_err)?;
            }
            v
        } else {
            let name = name.ok_or_else(|| PyValueError::new_err("create=False needs a name"))?;
            ShareableVec::<Dynamic>::open(name).map_err(region_err)?
        };
        Ok(PyShareableVec {
            v,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens the vec a pickled handle names (``shm._rebuild``).
    #[staticmethod]
    fn _from_handle(name: &str) -> PyResult<Self> {
        Ok(PyShareableVec {
            v: ShareableVec::<Dynamic>::open(name).map_err(region_err)?,
            closed: AtomicBool::new(false),
        })
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::handle::reduce(py, "ShareableVec", (self.name()?,))
    }

    /// The name other processes open the vec by.
    #[getter]
    fn name(&self) -> PyResult<String> {
        self.vec()?
            .name()
            .map(str::to_owned)
            .ok_or_else(|| PyValueError::new_err("this ShareableVec has no name"))
    }

    /// The object itself (``v.shm.close()``, ``v.shm.unlink()``).
    #[getter]
    fn shm(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Stops using the vec from this object (later calls raise ValueError).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Removes the vec's names now; processes that have it open keep using it.
    fn unlink(&self) -> PyResult<()> {
        self.v.unlink().map_err(region_err)
    }

    fn __len__(&self) -> PyResult<usize> {
        self.vec()?.len().map_err(region_err)
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(s) = index.cast::<PySlice>() {
            return self.as_list(py)?.as_any().get_item(s);
        }
        let i: isize = index.extract()?;
        let v = self.vec()?;
        let len = v.len().map_err(region_err)?;
        let j = self.index(i, len)?;
        match v.get(j).map_err(region_err)? {
            Some(d) => to_py(py, &d),
            None => Err(PyIndexError::new_err(format!(
                "ShareableVec index {i} out of range"
            ))),
        }
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        index: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(s) = index.cast::<PySlice>() {
            // Slice assignment with Python's rules on a list copy, written back in one edit
            // if nobody changed the vec meanwhile.
            let new = convert_all(value)?;
            return self.splice(py, s, Some(new));
        }
        let i: isize = index.extract()?;
        let d = to_dynamic(value)?;
        let r = self.edit(py, move |items| {
            let len = items.len() as isize;
            let j = if i < 0 { i + len } else { i };
            if j < 0 || j >= len {
                return Err(len);
            }
            items[j as usize] = d;
            Ok(())
        })?;
        r.map_err(|len| {
            PyIndexError::new_err(format!(
                "ShareableVec assignment index {i} out of range for length {len}"
            ))
        })
    }

    fn __delitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = index.cast::<PySlice>() {
            return self.splice(py, s, None);
        }
        let i: isize = index.extract()?;
        self.pop(py, i).map(drop)
    }

    fn __contains__(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.as_list(py)?.contains(value)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.as_list(py)?.try_iter().map(Bound::into_any)
    }

    fn __reversed__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.as_list(py)?;
        l.reverse()?;
        l.try_iter().map(Bound::into_any)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.as_list(py)?.repr()?.to_string())
    }

    fn __eq__<'py>(&self, py: Python<'py>, other: &Bound<'py, PyAny>) -> PyResult<bool> {
        let mine = self.as_list(py)?;
        if let Ok(o) = other.cast::<PyShareableVec>() {
            return mine.eq(o.get().as_list(py)?);
        }
        if other.is_instance_of::<PyList>() || other.is_instance_of::<PyTuple>() {
            return mine.eq(PyList::new(
                py,
                other.try_iter()?.collect::<PyResult<Vec<_>>>()?,
            )?);
        }
        Ok(false)
    }

    fn __iadd__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.extend(py, other)
    }

    /// Appends ``value``.
    fn append(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        let v = self.vec()?;
        py.detach(|| v.push(d)).map_err(region_err)
    }

    /// Appends every item of ``values`` under one lock.
    fn extend(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = convert_all(values)?;
        let v = self.vec()?;
        py.detach(|| v.extend(items)).map_err(region_err)
    }

    /// Inserts ``value`` before ``index`` (clamped as ``list.insert`` does).
    fn insert(&self, py: Python<'_>, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = to_dynamic(value)?;
        self.edit(py, move |items| {
            let len = items.len() as isize;
            let j = if index < 0 {
                (index + len).max(0)
            } else {
                index.min(len)
            };
            items.insert(j as usize, d);
        })
    }

    /// Removes and returns the item at ``index`` (the last by default).
    #[pyo3(signature = (index=-1))]
    fn pop<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let v = self.vec()?;
        let r = if index == -1 {
            py.detach(|| v.pop()).map_err(region_err)?.ok_or(0)
        } else {
            self.edit(py, move |items| {
                let len = items.len() as isize;
                let j = if index < 0 { index + len } else { index };
                if j < 0 || j >= len {
                    return Err(len);
                }
                Ok(items.remove(j as usize))
            })?
            .map_err(|l| l as usize)
        };
        match r {
            Ok(d) => to_py(py, &d),
            Err(0) => Err(PyIndexError::new_err("pop from empty ShareableVec")),
            Err(len) => Err(PyIndexError::new_err(format!(
                "ShareableVec pop index {index} out of range for length {len}"
            ))),
        }
    }

    /// Removes the first item equal to ``value`` (ValueError if none).
    fn remove(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.index_of(py, value)?;
        let d = to_dynamic(value)?;
        // Remove by value inside the edit: right even if the vec moved meanwhile.
        let found = self.edit(py, move |items| match items.iter().position(|x| *x == d) {
            Some(j) => {
                items.remove(j);
                true
            }
            None => false,
        })?;
        if found {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "ShareableVec.remove(x): x not in list (was at {i})"
            )))
        }
    }

    /// The position of the first item equal to ``value`` (ValueError if none).
    #[pyo3(name = "index")]
    fn index_of(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.as_list(py)?.index(value)
    }

    /// How many items equal ``value``.
    fn count(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        let l = self.as_list(py)?;
        let mut n = 0;
        for x in l.iter() {
            if x.eq(value)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Reverses the items in place (one atomic edit).
    fn reverse(&self, py: Python<'_>) -> PyResult<()> {
        self.edit(py, |items| items.reverse())
    }

    /// Sorts in Python (``key``, ``reverse`` as ``list.sort``) and writes the result back
    /// atomically if no other process changed the vec meanwhile (else sorts again).
    #[pyo3(signature = (*, key=None, reverse=false))]
    fn sort(&self, py: Python<'_>, key: Option<&Bound<'_, PyAny>>, reverse: bool) -> PyResult<()> {
        loop {
            let before = self.snapshot(py)?;
            let l = PyList::new(
                py,
                before
                    .iter()
                    .map(|d| to_py(py, d))
                    .collect::<PyResult<Vec<_>>>()?,
            )?;
            let kw = PyDict::new(py);
            kw.set_item("key", key)?;
            kw.set_item("reverse", reverse)?;
            l.call_method("sort", (), Some(&kw))?;
            let sorted = convert_all(&l)?;
            let done = self.edit(py, move |items| {
                if *items == before {
                    *items = sorted;
                    true
                } else {
                    false
                }
            })?;
            if done {
                return Ok(());
            }
            py.check_signals()?;
        }
    }

    /// Removes every item.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let v = self.vec()?;
        py.detach(|| v.clear()).map_err(region_err)
    }

    /// A plain ``list`` copy.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.as_list(py)
    }
}

impl PyShareableVec {
    /// Slice assignment (`new`) or deletion (`None`) with Python's rules, in one edit.
    fn splice(
        &self,
        py: Python<'_>,
        s: &Bound<'_, PySlice>,
        new: Option<Vec<Dynamic>>,
    ) -> PyResult<()> {
        loop {
            let before = self.snapshot(py)?;
            let len = before.len();
            let ind = s.indices(len as isize)?;
            let (start, stop, step) = (ind.start, ind.stop, ind.step);
            let picked: Vec<usize> = if step > 0 {
                (start..stop.max(start))
                    .step_by(step as usize)
                    .map(|i| i as usize)
                    .collect()
            } else {
                let mut v = Vec::new();
                let mut i = start;
                while i > stop {
                    v.push(i as usize);
                    i += step;
                }
                v
            };
            let mut after = before.clone();
            match &new {
                None => {
                    let mut sorted = picked.clone();
                    sorted.sort_unstable();
                    for i in sorted.into_iter().rev() {
                        after.remove(i);
                    }
                }
                Some(items) if step == 1 => {
                    let hi = (stop.max(start)) as usize;
                    after.splice(start as usize..hi, items.iter().cloned());
                }
                Some(items) => {
                    if items.len() != picked.len() {
                        return Err(PyValueError::new_err(format!(
                            "attempt to assign sequence of size {} to extended slice of size {}",
                            items.len(),
                            picked.len()
                        )));
                    }
                    for (i, x) in picked.iter().zip(items) {
                        after[*i] = x.clone();
                    }
                }
            }
            let done = self.edit(py, move |items| {
                if *items == before {
                    *items = after;
                    true
                } else {
                    false
                }
            })?;
            if done {
                return Ok(());
            }
            py.check_signals()?;
        }
    }
}
