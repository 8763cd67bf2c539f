import pytest

from shop.checkout import charge

# Stripe's documented test cards.
VISA_OK = "4242 4242 4242 4242"
VISA_DECLINED = "4000000000000002"


@pytest.mark.parametrize("card,expected", [(VISA_OK, "succeeded"), (VISA_DECLINED, "card_declined")])
def test_charge(card, expected, stripe_mock):
    result = charge(card=card, amount=1999, currency="eur")
    assert result.status == expected


def test_amount_must_be_positive(stripe_mock):
    with pytest.raises(ValueError):
        charge(card=VISA_OK, amount=0, currency="eur")
