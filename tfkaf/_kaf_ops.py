"""Placeholder: the KAF ops issue replaces this module."""


def default_gamma(boundary, num_centres):
  raise NotImplementedError


def default_gamma_2d(boundary, num_centres):
  raise NotImplementedError


def kaf(*args, **kwargs):
  raise NotImplementedError


def kaf2d(*args, **kwargs):
  raise NotImplementedError


kaf_composite = kaf
kaf2d_composite = kaf2d
