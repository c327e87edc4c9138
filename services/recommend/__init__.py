"""Matching recommendation service: items of the other regions that go with a given item. Built in issue 5."""
