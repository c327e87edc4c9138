"""Garment detection service: image -> items (outer/top/bottom/onepiece) with boxes. Built in issue 4."""
